package config

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	lo := netip.MustParseAddr("127.0.0.1")
	want := &Config{
		SIP: SIP{
			Listen: []Listen{
				{Transport: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5060")},
				{Transport: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:5060")},
			},
			AdvertiseIP:  lo,
			Codecs:       []string{"opus", "PCMU", "PCMA"},
			UserAgent:    "switchboard",
			SRTP:         "optional",
			DropScanners: true,
		},
		RTP:          RTP{IP: lo, PortMin: 10000, PortMax: 10999, Timeout: 30 * time.Second},
		HTTP:         HTTP{Listen: "127.0.0.1:8080"},
		Dialplan:     "dialplan.yaml",
		DrainTimeout: 30 * time.Second,
		Log:          Log{Level: slog.LevelInfo, Format: "text"},
		Recordings:   Recordings{Dir: "recordings"},
		CDR:          CDR{Driver: "sqlite", DSN: "switchboard-cdr.db"},
		Rooms:        Rooms{ICEIP: lo},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	// Default hands out fresh slices: changing one must not change the next.
	c.SIP.Codecs[0] = "X"
	if Default().SIP.Codecs[0] != "opus" {
		t.Error("Default shares its codecs slice")
	}
}

func TestEmptyIsDefault(t *testing.T) {
	for _, data := range []string{"", "# all defaults\n", "---\n", "sip:\nrtp:\nlog:\n"} {
		c, err := Parse("c.yaml", []byte(data), "/etc/sb")
		if err != nil {
			t.Fatalf("Parse(%q): %v", data, err)
		}
		want := Default()
		want.File = "c.yaml"
		want.Dialplan = "/etc/sb/dialplan.yaml"
		want.Recordings.Dir = "/etc/sb/recordings"
		want.CDR.DSN = "/etc/sb/switchboard-cdr.db"
		if !reflect.DeepEqual(c, want) {
			t.Errorf("Parse(%q) =\n%+v\nwant\n%+v", data, c, want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(*Config) bool
	}{
		{"advertise from listen", "sip:\n  listen: [{transport: udp, addr: 10.0.0.5:5080}]\n",
			func(c *Config) bool { return c.SIP.AdvertiseIP == netip.MustParseAddr("10.0.0.5") }},
		{"advertise from IPv6 listen", "sip:\n  listen: [{transport: tcp, addr: '[::1]:5060'}]\n",
			func(c *Config) bool { return c.SIP.AdvertiseIP == netip.MustParseAddr("::1") }},
		{"wildcard with advertise_ip", "sip:\n  listen: [{transport: udp, addr: 0.0.0.0:5060}]\n  advertise_ip: 203.0.113.7\n",
			func(c *Config) bool {
				return c.SIP.AdvertiseIP == netip.MustParseAddr("203.0.113.7") && c.SIP.Listen[0].Addr.Addr().IsUnspecified()
			}},
		{"advertise_ip null is unset", "sip:\n  advertise_ip:\n",
			func(c *Config) bool { return c.SIP.AdvertiseIP == netip.MustParseAddr("127.0.0.1") }},
		{"codecs order kept", "sip: {codecs: [PCMA, PCMU]}\n",
			func(c *Config) bool { return reflect.DeepEqual(c.SIP.Codecs, []string{"PCMA", "PCMU"}) }},
		{"opus allowed", "sip: {codecs: [opus, PCMU]}\n",
			func(c *Config) bool { return reflect.DeepEqual(c.SIP.Codecs, []string{"opus", "PCMU"}) }},
		{"user_agent empty", "sip: {user_agent: ''}\n", func(c *Config) bool { return c.SIP.UserAgent == "" }},
		{"abuse limits", "sip: {max_calls: 200, rate_limit: 50, rate_burst: 100, drop_scanners: false}\n",
			func(c *Config) bool {
				return c.SIP.MaxCalls == 200 && c.SIP.RateLimit == 50 && c.SIP.RateBurst == 100 && !c.SIP.DropScanners
			}},
		{"scanners dropped by default", "sip: {}\n", func(c *Config) bool { return c.SIP.DropScanners && c.SIP.MaxCalls == 0 }},
		{"cdr sqlite path relative to the config", "cdr: {dsn: var/calls.db}\n",
			func(c *Config) bool { return c.CDR == CDR{Driver: "sqlite", DSN: "/etc/sb/var/calls.db"} }},
		{"cdr sqlite absolute path", "cdr: {driver: sqlite, dsn: /data/cdr.db, node: gw1}\n",
			func(c *Config) bool { return c.CDR == CDR{Driver: "sqlite", DSN: "/data/cdr.db", Node: "gw1"} }},
		{"cdr postgres dsn kept", "cdr: {driver: postgres, dsn: 'postgres://sb@db:5432/cdr?sslmode=disable'}\n",
			func(c *Config) bool {
				return c.CDR == CDR{Driver: "postgres", DSN: "postgres://sb@db:5432/cdr?sslmode=disable"}
			}},
		{"rtp", "rtp: {ip: 0.0.0.0, port_min: 20000, port_max: 20001, timeout: 1m30s}\n",
			func(c *Config) bool {
				return c.RTP == RTP{IP: netip.IPv4Unspecified(), PortMin: 20000, PortMax: 20001, Timeout: 90 * time.Second}
			}},
		{"rtp timeout 0 disables", "rtp: {timeout: 0}\n", func(c *Config) bool { return c.RTP.Timeout == 0 }},
		{"http disabled", "http: {listen: ''}\n", func(c *Config) bool { return c.HTTP.Listen == "" }},
		{"http any interface", "http: {listen: ':9090'}\n", func(c *Config) bool { return c.HTTP.Listen == ":9090" }},
		{"dialplan relative", "dialplan: plans/main.yaml\n", func(c *Config) bool { return c.Dialplan == "/etc/sb/plans/main.yaml" }},
		{"dialplan absolute", "dialplan: /srv/dp.yaml\n", func(c *Config) bool { return c.Dialplan == "/srv/dp.yaml" }},
		{"drain_timeout", "drain_timeout: 2m\n", func(c *Config) bool { return c.DrainTimeout == 2*time.Minute }},
		{"log", "log: {level: debug, format: json}\n",
			func(c *Config) bool { return c.Log == Log{Level: slog.LevelDebug, Format: "json"} }},
		{"log warn", "log: {level: warn}\n", func(c *Config) bool { return c.Log.Level == slog.LevelWarn }},
		{"aliases", "rtp: {port_min: &p 20000, port_max: 20999}\nhttp: {listen: '127.0.0.1:20000'}\nsip: {user_agent: *p}\n",
			func(c *Config) bool { return c.SIP.UserAgent == "20000" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(tt.yaml), "/etc/sb")
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // "line:col: message fragment", in file order
	}{
		{"syntax", "sip:\n  user_agent: a: b\n", []string{"2: YAML syntax: mapping values are not allowed"}},
		{"second document", "sip: {}\n---\nrtp: {}\n", []string{"2:1: a second YAML document"}},
		{"not a mapping", "- sip\n", []string{"1:1: config: want a mapping with keys sip, rtp, http, dialplan, drain_timeout, log, recordings, cdr, "}},
		{"unknown top key", "sip: {}\nmedia: {}\n", []string{`2:1: config: unknown key "media"; allowed: sip, rtp, http, dialplan, drain_timeout, log`}},
		{"duplicate key", "rtp: {}\nrtp: {}\n", []string{`2:1: config: duplicate key "rtp" (first at line 1)`}},
		{"section wrong type", "sip: [a]\n", []string{"1:6: sip: want a mapping with keys listen, advertise_ip, codecs, user_agent, max_calls, rate_limit, rate_burst, drop_scanners, srtp, got a list"}},
		{"unknown sip key", "sip:\n  codec: [PCMU]\n", []string{`2:3: sip: unknown key "codec"; allowed: listen, advertise_ip, codecs, user_agent, max_calls`}},
		{"abuse limits", "sip:\n  max_calls: -1\n  rate_limit: lots\n  drop_scanners: yes please\n", []string{
			"2:14: sip.max_calls: -1 is negative", "3:15: sip.rate_limit:", "4:18: sip.drop_scanners: want true or false"}},
		{"listen not a list", "sip:\n  listen: 127.0.0.1:5060\n", []string{`2:11: sip.listen: want a list of {transport: udp|tcp|tls, addr: host:port}, got "127.0.0.1:5060"`}},
		{"listen empty", "sip:\n  listen: []\n", []string{"2:11: sip.listen: empty"}},
		{"listen bad transport", "sip:\n  listen:\n    - {transport: sctp, addr: 127.0.0.1:5061}\n",
			[]string{`3:19: sip.listen.transport: "sctp" is not allowed; allowed: udp, tcp, tls`}},
		{"listen missing transport", "sip:\n  listen:\n    - addr: 127.0.0.1:5060\n",
			[]string{"3:7: sip.listen: entry is missing transport; allowed: udp, tcp, tls"}},
		{"listen missing addr", "sip:\n  listen:\n    - transport: udp\n",
			[]string{"3:7: sip.listen: entry is missing addr"}},
		{"listen unknown key", "sip:\n  listen:\n    - {transport: udp, addr: 127.0.0.1:5060, port: 1}\n",
			[]string{`3:46: sip.listen: unknown key "port"; allowed: transport, addr`}},
		{"listen bad addr", "sip:\n  listen:\n    - {transport: udp, addr: localhost:5060}\n",
			[]string{`3:30: sip.listen.addr: "localhost:5060" is not IP:port`}},
		{"listen addr without port", "sip:\n  listen:\n    - {transport: udp, addr: 127.0.0.1}\n",
			[]string{`3:30: sip.listen.addr: "127.0.0.1" is not IP:port`}},
		{"listen duplicate", "sip:\n  listen:\n    - {transport: udp, addr: 127.0.0.1:5060}\n    - {transport: udp, addr: 127.0.0.1:5060}\n",
			[]string{"4:30: sip.listen: udp 127.0.0.1:5060 is listed twice (first at line 3)"}},
		{"wildcard without advertise_ip", "sip:\n  listen:\n    - {transport: udp, addr: 0.0.0.0:5060}\n",
			[]string{"3:30: sip.listen: 0.0.0.0:5060 listens on every interface, so it has no IP to advertise; set sip.advertise_ip"}},
		{"listen IPs differ", "sip:\n  listen:\n    - {transport: udp, addr: 127.0.0.1:5060}\n    - {transport: tcp, addr: 10.0.0.1:5060}\n",
			[]string{"4:30: sip.listen: 10.0.0.1 differs from the first listen IP 127.0.0.1; set sip.advertise_ip"}},
		{"advertise_ip not an IP", "sip:\n  listen: [{transport: udp, addr: 0.0.0.0:5060}]\n  advertise_ip: gw.example.com\n",
			[]string{`3:17: sip.advertise_ip: "gw.example.com" is not an IP address`}},
		{"advertise_ip wildcard", "sip:\n  advertise_ip: 0.0.0.0\n", []string{"2:17: sip.advertise_ip: 0.0.0.0 is a wildcard"}},
		{"advertise_ip wrong type", "sip:\n  advertise_ip: [1.2.3.4]\n", []string{"2:17: sip.advertise_ip: want a string, got a list"}},
		{"codecs not a list", "sip:\n  codecs: PCMU\n", []string{`2:11: sip.codecs: want a list in preference order from PCMU, PCMA, G722, opus, got "PCMU"`}},
		{"codecs empty", "sip:\n  codecs: []\n", []string{"2:11: sip.codecs: empty; want at least one of PCMU, PCMA, G722, opus"}},
		{"codec unknown", "sip:\n  codecs: [PCMU, G726]\n", []string{`2:18: sip.codecs: "G726" is not allowed; allowed: PCMU, PCMA, G722, opus`}},
		{"codec lower case", "sip:\n  codecs:\n    - pcmu\n", []string{`3:7: sip.codecs: "pcmu" is not allowed; allowed: PCMU, PCMA, G722, opus`}},
		{"codec twice", "sip:\n  codecs: [PCMA, PCMA]\n", []string{"2:18: sip.codecs: PCMA is listed twice"}},
		{"user_agent wrong type", "sip:\n  user_agent: {a: b}\n", []string{"2:15: sip.user_agent: want a string, got a mapping"}},
		{"unknown rtp key", "rtp:\n  port_mn: 10000\n", []string{`2:3: rtp: unknown key "port_mn"; allowed: ip, port_min, port_max, timeout`}},
		{"rtp ip bad", "rtp:\n  ip: 127.0.0\n", []string{`2:7: rtp.ip: "127.0.0" is not an IP address`}},
		{"port_min not a number", "rtp:\n  port_min: low\n", []string{`2:13: rtp.port_min: want a UDP port 1024–65535, got "low"`}},
		{"port_min quoted", "rtp:\n  port_min: '10000'\n", []string{`2:13: rtp.port_min: want a UDP port 1024–65535, got "10000"`}},
		{"port_min too low", "rtp:\n  port_min: 1000\n", []string{"2:13: rtp.port_min: 1000 is out of range; want 1024–65535"}},
		{"port_max too high", "rtp:\n  port_max: 65536\n", []string{"2:13: rtp.port_max: 65536 is out of range; want 1024–65535"}},
		{"port_min odd", "rtp:\n  port_min: 10001\n", []string{"2:13: rtp.port_min: 10001 is odd; want an even port"}},
		{"port_min not below port_max", "rtp:\n  port_min: 20000\n  port_max: 20000\n",
			[]string{"2:13: rtp: port_min 20000 is not below port_max 20000; want port_min < port_max"}},
		{"port_max below default port_min", "rtp:\n  port_max: 5000\n",
			[]string{"2:13: rtp: port_min 10000 is not below port_max 5000"}},
		{"timeout without unit", "rtp:\n  timeout: 30\n", []string{`2:12: rtp.timeout: "30" is not a duration; want a Go duration like 30s or 1m30s (0 disables)`}},
		{"timeout negative", "rtp:\n  timeout: -1s\n", []string{`2:12: rtp.timeout: "-1s" is not a duration`}},
		{"http unknown key", "http:\n  addr: :8080\n", []string{`2:3: http: unknown key "addr"; allowed: listen`}},
		{"http listen without port", "http:\n  listen: localhost\n", []string{`2:11: http.listen: "localhost" is not host:port`}},
		{"http listen bad port", "http:\n  listen: 127.0.0.1:http\n", []string{`2:11: http.listen: "127.0.0.1:http" is not host:port`}},
		{"dialplan empty", "dialplan: ''\n", []string{"1:11: dialplan: empty"}},
		{"dialplan wrong type", "dialplan: [a.yaml]\n", []string{"1:11: dialplan: want a string, got a list"}},
		{"drain_timeout bad", "drain_timeout: soon\n", []string{`1:16: drain_timeout: "soon" is not a duration; want a Go duration like 30s or 1m30s (0 hangs up at once)`}},
		{"log level", "log:\n  level: trace\n", []string{`2:10: log.level: "trace" is not allowed; allowed: debug, info, warn, error`}},
		{"log format", "log:\n  format: logfmt\n", []string{`2:11: log.format: "logfmt" is not allowed; allowed: text, json`}},
		{"log unknown key", "log:\n  output: stderr\n", []string{`2:3: log: unknown key "output"; allowed: level, format`}},
		{"cdr driver", "cdr:\n  driver: mysql\n", []string{`2:11: cdr.driver: "mysql" is not allowed; allowed: sqlite, postgres`}},
		{"cdr postgres without dsn", "cdr:\n  driver: postgres\n", []string{"2:11: cdr: driver postgres needs dsn"}},
		{"cdr dsn empty", "cdr: {dsn: ''}\n", []string{"1:12: cdr.dsn: empty"}},
		{"cdr sqlite path with ?", "cdr: {dsn: 'a.db?mode=ro'}\n", []string{`1:12: cdr.dsn: "a.db?mode=ro": a SQLite file path may not contain ? or #`}},
		{"cdr unknown key", "cdr:\n  url: x\n", []string{`2:3: cdr: unknown key "url"; allowed: driver, dsn, node`}},
		{"every error, in file order", `sip:
  listen:
    - { transport: sctp, addr: 0.0.0.0:5060 }
  codecs: [PCMU, G729]
rtp:
  port_min: 10001
  timeout: 30
log: { level: loud }
extra: 1
`, []string{
			`3:20: sip.listen.transport: "sctp" is not allowed`,
			`4:18: sip.codecs: "G729" is not allowed`,
			"6:13: rtp.port_min: 10001 is odd",
			`7:12: rtp.timeout: "30" is not a duration`,
			`8:15: log.level: "loud" is not allowed`,
			`9:1: config: unknown key "extra"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(tt.yaml), "")
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors %q", c, tt.want)
			}
			if c != nil {
				t.Error("Parse returned a config with an error")
			}
			var list Errors
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(list) || len(list) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(lines[i], "c.yaml:"+want) {
					t.Errorf("error %d = %q\nwant prefix %q", i, lines[i], "c.yaml:"+want)
				}
			}
		})
	}
}

func TestLoadShipped(t *testing.T) {
	path := filepath.Join("..", "..", "..", "configs", "switchboard.yaml")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.File = path
	want.Dialplan = filepath.Join("..", "..", "..", "configs", "dialplan.yaml")
	want.Recordings.Dir = filepath.Join("..", "..", "..", "configs", "recordings")
	want.CDR.DSN = filepath.Join("..", "..", "..", "configs", "switchboard-cdr.db")
	if !reflect.DeepEqual(c, want) {
		t.Errorf("shipped config =\n%+v\nwant the defaults\n%+v", c, want)
	}
	if _, err := os.Stat(c.Dialplan); err != nil {
		t.Errorf("shipped config names a dialplan that is not there: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}
