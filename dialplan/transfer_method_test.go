package dialplan

import (
	"strings"
	"testing"
)

func TestTransferMethodKey(t *testing.T) {
	p, err := Parse("dp.yaml", []byte(`routes:
  - name: bridged
    match: { to: a }
    target: { type: echo }
    transfer_method: bridge
  - name: referred
    match: { to: b }
    target: { type: echo }
    transfer_method: refer
  - name: unset
    match: { to: c }
    target: { type: echo }
default:
  target: { type: echo }
  transfer_method: bridge
`))
	if err != nil {
		t.Fatal(err)
	}
	for to, want := range map[string]string{"a": TransferBridge, "b": TransferRefer, "c": "", "zzz": TransferBridge} {
		if r, ok := p.Route(CallInfo{To: to}); !ok || r.TransferMethod != want {
			t.Errorf("route for %q: %v transfer_method=%q, want %q", to, ok, r.TransferMethod, want)
		}
	}
}

func TestTransferMethodErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"routes:\n  - name: r\n    match: { to: a }\n    target: { type: echo }\n    transfer_method: sip\n",
			`dp.yaml:5:22: transfer_method: "sip"; want refer or bridge`},
		{"default:\n  target: { type: echo }\n  transfer_method: [bridge]\n", "dp.yaml:3:20: transfer_method: want a string"},
		{"default:\n  target: { type: echo }\n  transfer: bridge\n", `dp.yaml:3:3: default: unknown key "transfer"`},
	} {
		_, err := Parse("dp.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}
