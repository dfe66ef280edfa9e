package config

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTrunksExample(t *testing.T) {
	t.Setenv("SWITCHBOARD_API_TOKEN", "t")
	t.Setenv("TWILIO_TERMINATION_PASSWORD", "p1")
	t.Setenv("PBX_PASSWORD", "p2")
	t.Setenv("CARRIER_PASSWORD", "p3")
	c, err := Load(filepath.Join("..", "..", "..", "configs", "trunks-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Trunks) != 3 {
		t.Fatalf("%d trunks, want 3", len(c.Trunks))
	}
	tw := c.Trunks[0]
	if tw.Name != "twilio" || len(tw.Inbound.Allow) != 8 || tw.Inbound.UnknownSource != "silent" || tw.Inbound.MaxCalls != 50 {
		t.Errorf("twilio inbound = %+v", tw.Inbound)
	}
	if !tw.Inbound.Allow[0].Contains(netip.MustParseAddr("54.172.60.2")) {
		t.Errorf("54.172.60.2 not in %v", tw.Inbound.Allow[0])
	}
	o := tw.Outbound
	if o.Host != "example.pstn.twilio.com" || o.Port != 0 || o.AuthPassword != "p1" || o.CallsPerSecond != 1 || o.MaxCalls != 10 {
		t.Errorf("twilio outbound = %+v", o)
	}
	r := c.Trunks[2].Outbound
	if r.RegisterExpires != 300*time.Second || r.OptionsPing != 30*time.Second || r.Port != 5070 || len(r.AllowedDestinations) != 2 {
		t.Errorf("registrar-carrier = %+v", r)
	}
	in, out := SIPTrunks(c.Trunks)
	if len(in) != 2 || len(out) != 2 || out[0].Auth.User != "switchboard" || !in[0].Silent {
		t.Errorf("SIPTrunks: %d in, %d out", len(in), len(out))
	}
}

func TestTrunkErrors(t *testing.T) {
	t.Setenv("SB_SET", "x")
	cases := []struct{ yaml, want string }{
		{"trunks:\n  - name: a\n    inbound:\n      allow: [10.0.0.1/8]\n", "c.yaml:4:15: trunks.inbound.allow: 10.0.0.1/8 has host bits set"},
		{"trunks:\n  - name: a\n    inbound: {}\n", "c.yaml:3:14: trunks.inbound: needs allow"},
		{"trunks:\n  - name: a\n    inbound:\n      allow: [127.0.0.2/32]\n      unknown_source: drop\n", "c.yaml:5:23: trunks.inbound.unknown_source: \"drop\" is not allowed"},
		{"trunks:\n  - name: a\n    inbound:\n      auth: {user: u, password_env: SB_UNSET_XYZ}\n", "c.yaml:4:37: trunks.inbound.auth.password_env: environment variable SB_UNSET_XYZ is unset"},
		{"trunks:\n  - name: a\n    outbound:\n      host: 127.0.0.1\n", "c.yaml:4:7: trunks.outbound: needs allowed_destinations"},
		{"trunks:\n  - name: a\n    outbound:\n      host: h\n      allowed_destinations: [\"~(\"]\n", "c.yaml:5:30: trunks.outbound.allowed_destinations: destination pattern"},
		{"trunks:\n  - name: a\n    outbound:\n      uri: sip:h;transport=tcp\n      register: {expires: 60s}\n      allowed_destinations: [\"1\"]\n", "c.yaml:5:27: trunks.outbound: register and options_ping need transport udp"},
		{"trunks:\n  - name: a\n    outbound: {host: h, allowed_destinations: [\"1\"], max_calls: -1}\n", "c.yaml:3:65: trunks.outbound.max_calls: -1 is negative"},
		{"trunks:\n  - name: a\n    inbound: {allow: [127.0.0.1/32]}\n  - name: a\n    inbound: {allow: [127.0.0.1/32]}\n", "c.yaml:4:11: trunks.name: \"a\" is used twice (first at line 2)"},
		{"trunks:\n  - name: a\n    inbound: {allow: [127.0.0.1/32]}\n    outbond: {}\n", "c.yaml:4:5: trunks: unknown key \"outbond\""},
	}
	for _, tc := range cases {
		_, err := Parse("c.yaml", []byte(tc.yaml), ".")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}
