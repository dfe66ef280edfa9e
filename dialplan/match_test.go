package dialplan

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+1 (800) 555-0100", "18005550100"},
		{"0018005550100", "18005550100"},
		{"18005550100", "18005550100"},
		{"+18005550100", "18005550100"},
		{"+1.800.555.0100", "18005550100"},
		{"+18005550100;npdi;rn=+18005550000", "18005550100"}, // user parameters ignored
		{"030 1234", "0301234"},                              // national: no country assumed
		{"100", "100"},
		{"00", "00"},
		{"echo", "echo"},
		{"Echo", "Echo"},
		{"+", "+"},
		{"*67", "*67"},
		{"anonymous", "anonymous"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for in, want := range map[string]string{"+49 30 123456": "+4930123456", "0049 30 123456": "+4930123456", "030 123456": "030123456"} {
		if got, ok := Dialable(in); !ok || got != want {
			t.Errorf("Dialable(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

const routingPlan = `routes:
  - name: tollfree
    match: { to: "+1 (800) 555-0100" }
    target: { type: echo }
  - name: berlin-prefix
    match: { to: "+49 30*" }
    target: { type: echo }
  - name: uk-regex
    match: { to: "~^44(20|161)\\d+$" }
    target: { type: echo }
  - name: twilio-account
    match:
      headers: { X-Twilio-AccountSid: AC123, User-Agent: "~^Twilio" }
    target: { type: echo }
  - name: from-carrier
    match: { source: [54.172.60.0/30, "2001:db8::/32", 192.0.2.7] }
    target: { type: echo }
  - name: telnyx
    match: { trunk: [telnyx, telnyx-backup], to: "2000" }
    target: { type: echo }
  - name: office-hours
    match:
      to: "3000"
      time: { days: [mon-fri], from: "09:00", to: "17:30", tz: Europe/Berlin }
    target: { type: echo }
  - name: night
    match:
      to: "3000"
      time:
        - { days: [fri-sun], from: "22:00", to: "06:00+1", tz: America/New_York }
        - { days: [tue], from: "12:00", to: "13:00", tz: America/New_York }
    target: { type: echo }
  - name: caller-prefix
    match: { from: "0044*" }
    target: { type: echo }
default:
  target: { type: reject, status: 404 }
`

func TestRouteMatchers(t *testing.T) {
	p, err := Parse("r.yaml", []byte(routingPlan))
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(kv ...string) func(string) string {
		return func(name string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if strings.EqualFold(kv[i], name) {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	ny, _ := time.LoadLocation("America/New_York")
	// 2025-03-05 is a Wednesday.
	wed := func(h, m int, loc *time.Location) time.Time { return time.Date(2025, 3, 5, h, m, 0, 0, loc) }
	tests := []struct {
		name string
		call CallInfo
		want string
	}{
		{"E.164 with +", CallInfo{To: "+18005550100"}, "tollfree"},
		{"international 00", CallInfo{To: "0018005550100"}, "tollfree"},
		{"no prefix", CallInfo{To: "18005550100"}, "tollfree"},
		{"formatted", CallInfo{To: "+1-800-555-0100"}, "tollfree"},
		{"other number", CallInfo{To: "+18005550101"}, "default"},
		{"prefix +49", CallInfo{To: "+4930123456"}, "berlin-prefix"},
		{"prefix 0049", CallInfo{To: "004930123456"}, "berlin-prefix"},
		{"prefix national is not international", CallInfo{To: "030123456"}, "default"},
		{"regex on normalised", CallInfo{To: "+44 20 7946 0000"}, "uk-regex"},
		{"regex 00", CallInfo{To: "00441612223333"}, "uk-regex"},
		{"regex no match", CallInfo{To: "+44113"}, "default"},
		{"headers both", CallInfo{To: "x", Header: hdr("x-twilio-accountsid", "AC123", "User-Agent", "Twilio Gateway")}, "twilio-account"},
		{"header wrong value", CallInfo{To: "x", Header: hdr("X-Twilio-AccountSid", "AC124", "User-Agent", "Twilio Gateway")}, "default"},
		{"header missing", CallInfo{To: "x", Header: hdr("X-Twilio-AccountSid", "AC123")}, "default"},
		{"no headers at all", CallInfo{To: "x"}, "default"},
		{"source in CIDR", CallInfo{To: "x", Source: netip.MustParseAddr("54.172.60.3")}, "from-carrier"},
		{"source 4in6", CallInfo{To: "x", Source: netip.MustParseAddr("::ffff:54.172.60.1")}, "from-carrier"},
		{"source outside", CallInfo{To: "x", Source: netip.MustParseAddr("54.172.60.4")}, "default"},
		{"source v6", CallInfo{To: "x", Source: netip.MustParseAddr("2001:db8::1")}, "from-carrier"},
		{"source bare IP", CallInfo{To: "x", Source: netip.MustParseAddr("192.0.2.7")}, "from-carrier"},
		{"source unknown", CallInfo{To: "x"}, "default"},
		{"trunk", CallInfo{To: "2000", Trunk: "telnyx-backup"}, "telnyx"},
		{"wrong trunk", CallInfo{To: "2000", Trunk: "twilio"}, "default"},
		{"no trunk", CallInfo{To: "2000"}, "default"},
		{"office hours Berlin", CallInfo{To: "3000", At: wed(9, 0, berlin)}, "office-hours"},
		{"office hours given in UTC", CallInfo{To: "3000", At: wed(16, 29, time.UTC)}, "office-hours"}, // 17:29 CET
		{"after hours in UTC", CallInfo{To: "3000", At: wed(16, 30, time.UTC)}, "default"},             // 17:30 CET: to is exclusive
		{"before hours", CallInfo{To: "3000", At: wed(8, 59, berlin)}, "default"},
		{"saturday", CallInfo{To: "3000", At: time.Date(2025, 3, 8, 14, 0, 0, 0, berlin)}, "default"},
		{"friday night NY", CallInfo{To: "3000", At: time.Date(2025, 3, 7, 23, 0, 0, 0, ny)}, "night"},
		{"saturday early NY, crossing midnight", CallInfo{To: "3000", At: time.Date(2025, 3, 8, 5, 59, 0, 0, ny)}, "night"},
		{"monday early NY, from sunday's window", CallInfo{To: "3000", At: time.Date(2025, 3, 10, 3, 0, 0, 0, ny)}, "night"},
		{"tuesday early NY", CallInfo{To: "3000", At: time.Date(2025, 3, 11, 3, 0, 0, 0, ny)}, "default"},
		{"thursday night NY", CallInfo{To: "3000", At: time.Date(2025, 3, 6, 23, 0, 0, 0, ny)}, "default"},
		{"tuesday noon NY (second window)", CallInfo{To: "3000", At: time.Date(2025, 3, 11, 12, 30, 0, 0, ny)}, "night"},
		{"caller prefix 00", CallInfo{To: "x", From: "+44 7700 900123"}, "caller-prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := p.Route(tt.call)
			if !ok || r.Name != tt.want {
				t.Errorf("Route(%+v) = %v, want %s", tt.call, r.Name, tt.want)
			}
		})
	}
}

func TestRouteSettingsAndTransfer(t *testing.T) {
	p, err := Parse("/etc/dp.yaml", []byte(`routes:
  - name: human
    match: { to: "0" }
    target: { type: transfer, to: "0049 30 123456", trunk: carrier }
    ring: 2s
    max_duration: 30m
  - name: pbx
    match: { to: "1" }
    target: { type: transfer, to: "sip:desk@pbx.example.com:5080;transport=tcp" }
  - name: bot
    match: { to: "2" }
    target:
      type: agent
      protocol: switchboard
      url: ws://127.0.0.1:9/x
      params: { caller: "{{.From}}" }
      headers: [X-Twilio-AccountSid, X-Customer]
`))
	if err != nil {
		t.Fatal(err)
	}
	rs := p.Routes()
	if r := rs[0]; r.Target != (Target{Type: TypeTransfer, To: "+4930123456", Trunk: "carrier"}) || r.Ring != 2*time.Second || r.MaxDuration != 30*time.Minute {
		t.Errorf("human = %+v", r)
	}
	if r := rs[1]; r.Target.To != "sip:desk@pbx.example.com:5080;transport=tcp" || r.Target.Trunk != "" || r.Ring != 0 || r.MaxDuration != 0 {
		t.Errorf("pbx = %+v", r)
	}
	got, err := rs[2].Target.Params.Render(CallData{From: "alice", Headers: func(h string) string {
		if h == "X-Twilio-AccountSid" {
			return "AC9"
		}
		return ""
	}})
	if err != nil || len(got) != 2 || got["caller"] != "alice" || got["X-Twilio-AccountSid"] != "AC9" {
		t.Errorf("params = %v, %v; want caller and the one header present", got, err)
	}
}

// Every check of the new match keys, targets and settings, at its exact line:col.
func TestMatchErrors(t *testing.T) {
	const head = "routes:\n  - name: a\n    target: {type: echo}\n    match:\n" // match keys from line 5, col 7
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown match key", head + "      caller: x\n", []string{`5:7: match: unknown key "caller"; allowed: to, from, trunk, source, headers, time`}},
		{"bad regex", head + "      from: \"~^[0-9\"\n", []string{`5:13: match.from: bad regular expression "^[0-9": missing closing ]`}},
		{"regex with +", head + "      to: \"~^\\\\+49\"\n", []string{`5:11: match.to: "^\\+49" can never match a number: numbers are compared without + or 00`}},
		{"lone star", head + "      to: \"*\"\n", []string{"5:11: match.to: a lone * matches everything"}},
		{"bad CIDR", head + "      source: [10.0.0.0/8, 10.0.0.300/24]\n", []string{`5:28: match.source: "10.0.0.300/24" is not an address or CIDR`}},
		{"CIDR host bits", head + "      source: 10.1.2.3/8\n", []string{"5:15: match.source: 10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?"}},
		{"empty source list", head + "      source: []\n", []string{"5:15: match.source: empty list"}},
		{"bad header name", head + "      headers: {\"X Bad\": 1}\n", []string{`5:17: match.headers: "X Bad" is not a SIP header name`}},
		{"header bad regex", head + "      headers: {X-A: \"~(\"}\n", []string{`5:22: match.headers.X-A: bad regular expression "("`}},
		{"header twice", head + "      headers: {X-A: a, x-a: b}\n", []string{"5:25: match.headers: x-a given twice"}},
		{"trunk empty", head + "      trunk: ''\n", []string{"5:14: match.trunk: empty"}},
		{"time unknown day", head + "      time: {days: [mon-fry], from: \"09:00\", to: \"17:00\", tz: UTC}\n",
			[]string{`5:21: match.time.days: unknown day "mon-fry"`}},
		{"time day twice", head + "      time: {days: [mon-fri, wed], from: \"09:00\", to: \"17:00\", tz: UTC}\n",
			[]string{"5:30: match.time.days: wed is listed twice"}},
		{"time bad tz", head + "      time: {from: \"09:00\", to: \"17:00\", tz: Europe/Berlinn}\n",
			[]string{`5:46: match.time.tz: unknown time zone "Europe/Berlinn"`}},
		{"time Local tz", head + "      time: {from: \"09:00\", to: \"17:00\", tz: Local}\n",
			[]string{`5:46: match.time.tz: unknown time zone "Local"`}},
		{"time missing tz", head + "      time: {from: \"09:00\", to: \"17:00\"}\n",
			[]string{"5:13: match.time needs tz: an IANA time zone"}},
		{"time missing to", head + "      time: {from: \"09:00\", tz: UTC}\n",
			[]string{"5:13: match.time needs to:"}},
		{"time from == to", head + "      time: {from: \"09:00\", to: \"09:00\", tz: UTC}\n",
			[]string{"5:33: match.time: from and to are both 09:00, an empty window"}},
		{"time to before from", head + "      time: {from: \"22:00\", to: \"06:00\", tz: UTC}\n",
			[]string{`5:33: match.time.to: 06:00 is before from 22:00; for a window that crosses midnight write to: "06:00+1"`}},
		{"time +1 not crossing", head + "      time: {from: \"09:00\", to: \"10:00+1\", tz: UTC}\n",
			[]string{"5:33: match.time.to: 10:00+1 is 24 hours or more after from 09:00"}},
		{"time bad clock", head + "      time: {from: \"9am\", to: \"25:00\", tz: UTC}\n",
			[]string{`5:20: match.time.from: "9am" is not a time of day`, `5:31: match.time.to: "25:00" is out of range`}},
		{"time unknown key", head + "      time: {from: \"09:00\", to: \"10:00\", tz: UTC, zone: UTC}\n",
			[]string{`5:51: match.time: unknown key "zone"; allowed: days, from, to, tz`}},
		{"time windows overlap", head + "      time:\n        - {days: [mon-fri], from: \"09:00\", to: \"17:00\", tz: UTC}\n        - {days: [fri], from: \"16:00\", to: \"02:00+1\", tz: UTC}\n",
			[]string{"7:11: match.time: window overlaps the one at line 6 (both hold fri 16:00); merge them"}},
		{"time crossing overlaps next morning", head + "      time:\n        - {days: [sun], from: \"22:00\", to: \"06:00+1\", tz: UTC}\n        - {days: [mon], from: \"05:00\", to: \"07:00\", tz: UTC}\n",
			[]string{"7:11: match.time: window overlaps the one at line 6 (both hold mon 05:00); merge them"}},
		{"transfer missing to", "default:\n  target: {type: transfer, trunk: x}\n",
			[]string{"2:11: target of type transfer needs to:"}},
		{"transfer number without trunk", "default:\n  target: {type: transfer, to: \"+49 30 1\"}\n",
			[]string{"2:11: target of type transfer to a number needs trunk:"}},
		{"transfer garbage", "default:\n  target: {type: transfer, to: bob, trunk: x}\n",
			[]string{`2:32: target.to: "bob" is neither a SIP URI nor a number`}},
		{"transfer bad URI port", "default:\n  target: {type: transfer, to: \"sip:a@b:99999\"}\n",
			[]string{`2:32: target.to: "sip:a@b:99999" has a bad port "99999"`}},
		{"transfer unknown key", "default:\n  target: {type: transfer, to: \"sip:a@b\", url: x}\n",
			[]string{`2:43: target of type transfer: unknown key "url"; allowed: type, to, trunk`}},
		{"ring too long", "default:\n  target: {type: echo}\n  ring: 2m\n", []string{`3:9: ring: "2m"; want a duration such as "2s", 0–30s`}},
		{"max_duration bad", "default:\n  target: {type: echo}\n  max_duration: 30\n", []string{`3:17: max_duration: "30"; want a duration such as "30m"`}},
		{"agent headers bad", "default:\n  target: {type: agent, agent: default, headers: [X-A, \"a b\"]}\n",
			[]string{`2:56: target.headers: "a b" is not a SIP header name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("dp.yaml", []byte(tt.yaml))
			var list Errors
			if !errors.As(err, &list) {
				t.Fatalf("Parse error = %v, want Errors %q", err, tt.want)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tt.want), err)
			}
			for i, want := range tt.want {
				if got := list[i].Error(); !strings.HasPrefix(got, "dp.yaml:"+want) {
					t.Errorf("error %d = %q\nwant prefix %q", i, got, "dp.yaml:"+want)
				}
			}
		})
	}
}

// Matching runs once per INVITE; this is its cost on a plan of every kind of key.
func BenchmarkRoute(b *testing.B) {
	p, err := Parse("r.yaml", []byte(routingPlan))
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2025, 3, 5, 12, 0, 0, 0, time.UTC)
	c := CallInfo{To: "3000", From: "+1 212 555 0100", Trunk: "twilio", Source: netip.MustParseAddr("10.0.0.1"),
		Header: func(string) string { return "" }, At: at}
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := p.Route(c); r.Name != "office-hours" {
			b.Fatal(r.Name)
		}
	}
}
