package dialplan

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testPlan = `
routes:
  - name: echo-test
    match: { to: "echo" }
  # a comment between routes
    target: { type: echo }
  - name: support
    match: { to: "~^\\+?1800\\d+$" }
    target: { type: play, file: prompts/hello.wav }
  - name: blocked
    match: { from: "~^anonymous$" }
    target: { type: reject, status: 403, reason: Forbidden }
  - name: vip-sales
    match: { to: sales, from: "~^vip" }
    target: { type: agent, agent: sales-bot, url: "wss://agents.example/ws", protocol: twilio }
  - name: numeric
    match: { to: 100 }
    target: { type: reject, status: 486 }
default:
  target: { type: agent, agent: default }
`

func TestRoute(t *testing.T) {
	p, err := Parse("/etc/switchboard/dialplan.yaml", []byte(testPlan))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		call     CallInfo
		wantName string
		wantLine int
	}{
		{"exact to", CallInfo{To: "echo", From: "alice"}, "echo-test", 3},
		{"exact is whole user", CallInfo{To: "echo2"}, "default", 19},
		{"exact is case sensitive", CallInfo{To: "Echo"}, "default", 19},
		{"regexp to", CallInfo{To: "+18005551234"}, "support", 7},
		{"regexp to without plus", CallInfo{To: "18005551234"}, "support", 7},
		{"regexp to anchored", CallInfo{To: "x18005551234"}, "default", 19},
		{"regexp from", CallInfo{To: "12345", From: "anonymous"}, "blocked", 10},
		{"file order wins", CallInfo{To: "echo", From: "anonymous"}, "echo-test", 3},
		{"to and from both match", CallInfo{To: "sales", From: "vip-42"}, "vip-sales", 13},
		{"to matches, from does not", CallInfo{To: "sales", From: "alice"}, "default", 19},
		{"unquoted number", CallInfo{To: "100"}, "numeric", 16},
		{"empty call", CallInfo{}, "default", 19},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := p.Route(tt.call)
			if !ok {
				t.Fatalf("Route(%+v) = false", tt.call)
			}
			if r.Name != tt.wantName || r.Line != tt.wantLine {
				t.Errorf("Route(%+v) = %s (line %d), want %s (line %d)", tt.call, r.Name, r.Line, tt.wantName, tt.wantLine)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	p, err := Parse("/etc/switchboard/dialplan.yaml", []byte(testPlan))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Target{
		"echo-test": {Type: TypeEcho},
		"support":   {Type: TypePlay, File: "/etc/switchboard/prompts/hello.wav"},
		"blocked":   {Type: TypeReject, Status: 403, Reason: "Forbidden"},
		"vip-sales": {Type: TypeAgent, Agent: "sales-bot", URL: "wss://agents.example/ws", Protocol: "twilio", ConnectTimeout: DefaultConnectTimeout},
		"numeric":   {Type: TypeReject, Status: 486},
	}
	routes := p.Routes()
	if len(routes) != len(want) {
		t.Fatalf("%d routes, want %d", len(routes), len(want))
	}
	for _, r := range routes {
		if !reflect.DeepEqual(r.Target, want[r.Name]) {
			t.Errorf("route %s target = %+v, want %+v", r.Name, r.Target, want[r.Name])
		}
	}
	if m := routes[3].Match; m.To != "sales" || m.From != "~^vip" {
		t.Errorf("vip-sales Match = %+v", m)
	}
	def, ok := p.Default()
	if !ok || def.Target != (Target{Type: TypeAgent, Agent: "default"}) {
		t.Errorf("Default() = %+v, %v", def, ok)
	}
}

func TestPlayFilePaths(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"dir/dialplan.yaml", "a.wav", "dir/a.wav"},
		{"dir/dialplan.yaml", "../p/a.wav", "p/a.wav"},
		{"dir/dialplan.yaml", "/abs/a.wav", "/abs/a.wav"},
		{"dialplan.yaml", "a.wav", "a.wav"},
	}
	for _, tt := range tests {
		p, err := Parse(tt.name, []byte("default: {target: {type: play, file: "+tt.file+"}}"))
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := p.Route(CallInfo{}); r.Target.File != tt.want {
			t.Errorf("Parse(%q) file %q resolved to %q, want %q", tt.name, tt.file, r.Target.File, tt.want)
		}
	}
}

func TestNoMatchNoDefault(t *testing.T) {
	p, err := Parse("d.yaml", []byte("routes:\n  - {name: a, match: {to: a}, target: {type: echo}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := p.Route(CallInfo{To: "b"}); ok || r != nil {
		t.Errorf("Route = %v, %v; want nil, false", r, ok)
	}
	if _, ok := p.Default(); ok {
		t.Error("Default() = true")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // "line:col: message fragment", in order
	}{
		{"empty file", "", []string{"1:1: empty dialplan"}},
		{"comments only", "# nothing\n", []string{"1:1: empty dialplan"}},
		{"syntax", "default: {target: {type: echo}}\nroutes: x: y\n", []string{"2: YAML syntax: mapping values are not allowed in this context"}},
		{"second document", "default: {target: {type: echo}}\n---\nroutes: []\n", []string{"2:1: a second YAML document"}},
		{"top level list", "- a\n", []string{"1:1: dialplan: want a mapping with keys routes, default, got a list"}},
		{"top level unknown key", "default: {target: {type: echo}}\nrouts: []\n",
			[]string{`2:1: dialplan: unknown key "routs"; allowed: routes, default`}},
		{"neither routes nor default", "{}\n", []string{"1:1: dialplan has neither routes nor default"}},
		{"duplicate top key", "default: {target: {type: echo}}\ndefault: {target: {type: echo}}\n",
			[]string{`2:1: dialplan: duplicate key "default" (first at line 1)`}},
		{"routes not a list", "routes: {name: a}\n", []string{"1:9: routes: want a list of {name, match, target}, got a mapping"}},
		{"route not a mapping", "routes:\n  - echo\n", []string{`2:5: route: want a mapping with keys name, match, target, got "echo"`}},
		{"route unknown key", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: echo}\n    targte: {}\n",
			[]string{`5:5: route: unknown key "targte"; allowed: name, match, target`}},
		{"missing name", "routes:\n  - match: {to: a}\n    target: {type: echo}\n",
			[]string{"2:5: route is missing name"}},
		{"empty name", "routes:\n  - name: ''\n    match: {to: a}\n    target: {type: echo}\n",
			[]string{"2:11: name: empty"}},
		{"reserved name", "routes:\n  - name: default\n    match: {to: a}\n    target: {type: echo}\n",
			[]string{`2:11: name: "default" is reserved`}},
		{"name wrong type", "routes:\n  - name: [a]\n    match: {to: a}\n    target: {type: echo}\n",
			[]string{"2:11: name: want a string, got a list"}},
		{"duplicate route name", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: echo}\n  - name: a\n    match: {to: b}\n    target: {type: echo}\n",
			[]string{`5:11: duplicate route name "a" (first at line 2)`}},
		{"no match", "routes:\n  - name: a\n    target: {type: echo}\n",
			[]string{`2:5: route "a" has no match; want match: {to: ..., from: ..., trunk: ..., source: ..., headers: ..., time: ...} (use default: for a catch-all)`}},
		{"empty match", "routes:\n  - name: a\n    match: {}\n    target: {type: echo}\n",
			[]string{`3:12: route "a": match has no keys`}},
		{"null match", "routes:\n  - name: a\n    match:\n    target: {type: echo}\n",
			[]string{`3:11: route "a": match has no keys`}},
		{"match unknown key", "routes:\n  - name: a\n    match: {user: a}\n    target: {type: echo}\n",
			[]string{`3:13: match: unknown key "user"; allowed: to, from`}},
		{"match not a mapping", "routes:\n  - name: a\n    match: echo\n    target: {type: echo}\n",
			[]string{`3:12: match: want a mapping with keys to, from, trunk, source, headers, time, got "echo"`}},
		{"match value wrong type", "routes:\n  - name: a\n    match: {to: [a, b]}\n    target: {type: echo}\n",
			[]string{"3:17: match.to: want a string, got a list"}},
		{"match bare tilde", "routes:\n  - name: a\n    match: {from: ~}\n    target: {type: echo}\n",
			[]string{"3:19: match.from: want a string, got null (a bare ~ is YAML for null"}},
		{"match empty", "routes:\n  - name: a\n    match: {to: ''}\n    target: {type: echo}\n",
			[]string{"3:17: match.to: empty"}},
		{"bad regexp", "routes:\n  - name: a\n    match: {to: \"~^(1800\"}\n    target: {type: echo}\n",
			[]string{`3:17: match.to: bad regular expression "^(1800": missing closing ): ` + "`^(1800`" + `; want Go RE2 syntax after the leading ~`}},
		{"perl-only regexp", "routes:\n  - name: a\n    match:\n      from: '~^(?!anon)'\n    target: {type: echo}\n",
			[]string{"4:13: match.from: bad regular expression"}},
		{"no target", "routes:\n  - name: a\n    match: {to: a}\n",
			[]string{`2:5: route "a" has no target; want target: {type: echo|play|reject|agent|`}},
		{"target not a mapping", "routes:\n  - name: a\n    match: {to: a}\n    target: echo\n",
			[]string{`4:13: target: want a mapping {type: echo|play|reject|agent|`}},
		{"target missing type", "routes:\n  - name: a\n    match: {to: a}\n    target: {file: a.wav}\n",
			[]string{"4:13: target is missing type; allowed: echo, play, reject, agent"}},
		{"unknown target type", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: dial}\n",
			[]string{`4:20: unknown target type "dial"; allowed: echo, play, reject, agent`}},
		{"unknown target key for unknown type", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: dial, number: 1}\n",
			[]string{`4:20: unknown target type "dial"`, `4:26: target: unknown key "number"; allowed: type, file, status, reason, agent, url, protocol`}},
		{"key not allowed for type", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: echo, file: a.wav}\n",
			[]string{`4:26: target of type echo: unknown key "file"; allowed: type`}},
		{"play missing file", "routes:\n  - name: a\n    match: {to: a}\n    target:\n      type: play\n",
			[]string{"5:7: target of type play needs file: a WAV path"}},
		{"play empty file", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: play, file: \"\"}\n",
			[]string{"4:32: target.file: empty"}},
		{"reject missing status", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: reject, reason: No}\n",
			[]string{"4:13: target of type reject needs status: a SIP status 400–699"}},
		{"reject status out of range", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: reject, status: 200}\n",
			[]string{"4:36: target.status: 200 is not a failure status; want 400–699"}},
		{"reject status not a number", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: reject, status: busy}\n",
			[]string{`4:36: target.status: want a SIP status 400–699, got "busy"`}},
		{"reject status quoted", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: reject, status: '486'}\n",
			[]string{`4:36: target.status: want a SIP status 400–699, got "486"`}},
		{"reject reason wrong type", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: reject, status: 486, reason: {a: b}}\n",
			[]string{"4:49: target.reason: want a string, got a mapping"}},
		{"agent missing name", "routes:\n  - name: a\n    match: {to: a}\n    target: {type: agent, url: 'ws://x'}\n",
			[]string{"4:13: target of type agent needs agent: an agent name (built in: default)"}},
		{"agent empty name", "default:\n  target: {type: agent, agent: ''}\n",
			[]string{"2:32: target.agent: empty"}},
		{"default not a mapping", "default: echo\n", []string{`1:10: default: want a mapping {target: {...}}, got "echo"`}},
		{"default without target", "default: {}\n", []string{"1:10: default has no target"}},
		{"default unknown key", "default:\n  target: {type: echo}\n  name: x\n", []string{`3:3: default: unknown key "name"; allowed: target`}},
		{"default bad target", "default:\n  target: {type: agent}\n", []string{"2:11: target of type agent needs agent"}},
		{"every error, in file order", `routes:
  - name: a
    match: {to: "~("}
    target: {type: play}
  - name: a
    match: {to: b}
    target: {type: reject, status: 99}
default:
  target: {type: nope}
`, []string{
			"3:17: match.to: bad regular expression",
			"4:13: target of type play needs file",
			`5:11: duplicate route name "a" (first at line 2)`,
			"7:36: target.status: 99 is not a failure status",
			`9:18: unknown target type "nope"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("dp.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded (%d routes), want errors %q", len(p.routes), tt.want)
			}
			if p != nil {
				t.Errorf("Parse returned a plan with an error")
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
				if !strings.HasPrefix(lines[i], "dp.yaml:"+want) {
					t.Errorf("error %d = %q\nwant prefix %q", i, lines[i], "dp.yaml:"+want)
				}
			}
		})
	}
}

func TestAnchorsAndAliases(t *testing.T) {
	p, err := Parse("d.yaml", []byte(`
routes:
  - name: a
    match: {to: a}
    target: &bot {type: agent, agent: bot}
  - name: b
    match: {to: b}
    target: *bot
`))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := p.Route(CallInfo{To: "b"}); !ok || r.Target.Agent != "bot" {
		t.Errorf("Route(b) = %+v, %v", r, ok)
	}
	// A self-referencing anchor must be reported, not followed forever.
	if _, err := Parse("d.yaml", []byte("routes: &r [*r]\n")); err == nil {
		t.Error("self-referencing routes parsed")
	}
}

func TestLoadShipped(t *testing.T) {
	path := filepath.Join("..", "configs", "dialplan.yaml")
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		to   string
		want Target
	}{
		{"echo", Target{Type: TypeEcho}},
		{"hello", Target{Type: TypePlay, File: filepath.Join("..", "configs", "prompts", "hello.wav")}},
		{"+15551234567", Target{Type: TypeAgent, Agent: "default"}},
		{"1000", Target{Type: TypeAgent, Agent: "default"}},
	}
	for _, tt := range tests {
		r, ok := p.Route(CallInfo{To: tt.to, From: "alice"})
		if !ok || r.Target != tt.want {
			t.Errorf("Route(to=%s) = %+v, %v; want target %+v", tt.to, r, ok, tt.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}
