package dialplan

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const botPlan = `routes:
  - name: bot
    match: { to: bot }
    target:
      type: agent
      protocol: twilio
      url: ws://127.0.0.1:9000/media
      connect_timeout: 1500ms
      chunk_ms: 40
      params: { caller: "{{.From}}", called: "{{.To}}", customer: '{{.Header "X-Customer"}}', fixed: "42" }
    fallback:
      - { type: agent, protocol: switchboard, url: "wss://backup.example/ws" }
      - { type: play, file: sorry.wav }
    on_failure: { status: 480 }
  - name: plain
    match: { to: plain }
    target: { type: agent, protocol: audiosocket, url: "127.0.0.1:4573" }
default:
  target: { type: agent, protocol: openai-realtime }
  fallback: [ { type: echo } ]
`

func TestAgentTargets(t *testing.T) {
	p, err := Parse("/d/dp.yaml", []byte(botPlan))
	if err != nil {
		t.Fatal(err)
	}
	bot, _ := p.Route(CallInfo{To: "bot"})
	tg := bot.Target
	if tg.Protocol != ProtocolTwilio || tg.URL != "ws://127.0.0.1:9000/media" || tg.ConnectTimeout != 1500*time.Millisecond || tg.ChunkMs != 40 {
		t.Fatalf("target %+v", tg)
	}
	got, err := tg.Params.Render(CallData{From: "+15550001", To: "bot", Headers: func(n string) string {
		if n == "X-Customer" {
			return "c-7"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"caller": "+15550001", "called": "bot", "customer": "c-7", "fixed": "42"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("params %v, want %v", got, want)
	}
	if n := tg.Params.Names(); !reflect.DeepEqual(n, []string{"caller", "called", "customer", "fixed"}) {
		t.Fatalf("names %v", n)
	}
	wantFB := []Target{
		{Type: TypeAgent, Protocol: ProtocolSwitchboard, URL: "wss://backup.example/ws", ConnectTimeout: DefaultConnectTimeout},
		{Type: TypePlay, File: "/d/sorry.wav"},
	}
	if !reflect.DeepEqual(bot.Fallback, wantFB) || bot.FailStatus != 480 {
		t.Fatalf("fallback %+v status %d", bot.Fallback, bot.FailStatus)
	}
	plain, _ := p.Route(CallInfo{To: "plain"})
	if plain.FailStatus != 503 || plain.Fallback != nil || plain.Target.Params != nil {
		t.Fatalf("plain route %+v", plain)
	}
	def, _ := p.Default()
	if def.Target.Protocol != ProtocolOpenAI || len(def.Fallback) != 1 || def.Fallback[0].Type != TypeEcho {
		t.Fatalf("default %+v", def)
	}
}

func TestAgentTargetErrors(t *testing.T) {
	route := func(target string) string {
		return "routes:\n  - name: a\n    match: {to: a}\n    target: " + target + "\n"
	}
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown protocol", route("{type: agent, protocol: sip, url: 'ws://x'}"),
			[]string{`4:37: target.protocol: unknown protocol "sip"; allowed: twilio, switchboard, audiosocket, openai-realtime`}},
		{"no url", route("{type: agent, protocol: twilio}"),
			[]string{"4:13: target with protocol twilio needs url: a ws:// or wss:// URL"}},
		{"http url", route("{type: agent, protocol: switchboard, url: 'http://x/'}"),
			[]string{`4:55: target.url: "http://x/"; want a ws:// or wss:// URL`}},
		{"audiosocket url", route("{type: agent, protocol: audiosocket, url: 'ws://x'}"),
			[]string{`4:55: target.url: "ws://x" is not host:port`}},
		{"bad timeout", route("{type: agent, protocol: twilio, url: 'ws://x', connect_timeout: 2m}"),
			[]string{`4:77: target.connect_timeout: "2m"; want a duration`}},
		{"zero timeout", route("{type: agent, protocol: twilio, url: 'ws://x', connect_timeout: 0s}"),
			[]string{`4:77: target.connect_timeout: "0s"`}},
		{"timeout without protocol", route("{type: agent, agent: default, connect_timeout: 1s}"),
			[]string{"4:43: target.connect_timeout: only for a target with protocol:"}},
		{"chunk not a step of 20", route("{type: agent, protocol: twilio, url: 'ws://x', chunk_ms: 30}"),
			[]string{"4:70: target.chunk_ms: 30; want 20 (the default, as Twilio sends), 40, 60, 80 or 100"}},
		{"chunk too long", route("{type: agent, protocol: twilio, url: 'ws://x', chunk_ms: 120}"),
			[]string{"4:70: target.chunk_ms: 120; want 20"}},
		{"chunk a string", route("{type: agent, protocol: twilio, url: 'ws://x', chunk_ms: 40ms}"),
			[]string{`4:70: target.chunk_ms: want 20 (the default, as Twilio sends), 40, 60, 80 or 100, got "40ms"`}},
		{"chunk on another protocol", route("{type: agent, protocol: switchboard, url: 'ws://x', chunk_ms: 40}"),
			[]string{"4:65: target.chunk_ms: only for protocol: twilio"}},
		{"bad template", route("{type: agent, protocol: twilio, url: 'ws://x', params: {a: '{{.From'}}"),
			[]string{"4:72: target.params.a: a:1: unclosed action"}},
		{"unknown field", route("{type: agent, protocol: twilio, url: 'ws://x', params: {a: '{{.Frm}}'}}"),
			[]string{"4:72: target.params.a: a:1:2: executing"}},
		{"params not a mapping", route("{type: agent, protocol: twilio, url: 'ws://x', params: [a]}"),
			[]string{"4:68: target.params: want a mapping of name: template"}},
		{"params on echo", route("{type: echo, params: {a: b}}"),
			[]string{`4:26: target of type echo: unknown key "params"`}},
		{"fallback not a list", route("{type: echo}") + "    fallback: {type: echo}\n",
			[]string{"5:15: fallback: want a list of targets tried in order, got a mapping"}},
		{"bad fallback target", route("{type: echo}") + "    fallback: [{type: agent, protocol: x, url: 'ws://y'}]\n",
			[]string{`5:40: target.protocol: unknown protocol "x"`}},
		{"on_failure not failure", route("{type: echo}") + "    on_failure: {status: 200}\n",
			[]string{"5:26: on_failure.status: 200 is not a failure status; want 400–699"}},
		{"on_failure no status", route("{type: echo}") + "    on_failure: {}\n",
			[]string{"5:17: on_failure needs status:"}},
		{"on_failure unknown key", route("{type: echo}") + "    on_failure: {status: 503, code: 1}\n",
			[]string{`5:31: on_failure: unknown key "code"; allowed: status`}},
		{"default fallback error", "default:\n  target: {type: echo}\n  fallback: [{type: nope}]\n",
			[]string{`3:21: unknown target type "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("dp.yaml", []byte(tt.yaml))
			var list Errors
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(lines[i], "dp.yaml:"+want) {
					t.Errorf("error %d = %q\nwant prefix %q", i, lines[i], "dp.yaml:"+want)
				}
			}
		})
	}
}
