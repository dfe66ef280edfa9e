package dialplan

import (
	"strings"
	"testing"
)

func TestRecordKey(t *testing.T) {
	p, err := Parse("dp.yaml", []byte(`routes:
  - name: rec
    match: { to: a }
    target: { type: echo }
    record: true
  - name: plain
    match: { to: b }
    target: { type: echo }
  - name: off
    match: { to: c }
    target: { type: echo }
    record: false
default:
  target: { type: echo }
  record: true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"a": true, "b": false, "c": false, "zzz": true}
	for to, rec := range want {
		r, ok := p.Route(CallInfo{To: to})
		if !ok || r.Record != rec {
			t.Errorf("route for %q: %v record=%v, want record=%v", to, ok, r.Record, rec)
		}
	}
}

func TestRecordKeyErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"routes:\n  - name: r\n    match: { to: a }\n    target: { type: echo }\n    record: yes\n", `dp.yaml:5:13: record: want true or false, got "yes"`},
		{"routes:\n  - name: r\n    match: { to: a }\n    target: { type: echo }\n    record: 1\n", "dp.yaml:5:13: record: want true or false, got"},
		{"default:\n  target: { type: echo }\n  record: [x]\n", "dp.yaml:3:11: record: want true or false, got a list"},
	} {
		_, err := Parse("dp.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}
