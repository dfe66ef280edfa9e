package dialplan

import (
	"strings"
	"testing"
)

func TestOpenAITarget(t *testing.T) {
	p, err := Parse("dp.yaml", []byte(`routes:
  - name: ai
    match: { to: ai }
    target:
      type: agent
      protocol: openai-realtime
      model: gpt-realtime
      voice: marin
      instructions: Be brief.
      api_key_env: MY_KEY
      audio_format: pcm16
default:
  target: { type: agent, protocol: openai-realtime }
`))
	if err != nil {
		t.Fatal(err)
	}
	o := p.Routes()[0].Target.OpenAI
	if o == nil || *o != (OpenAI{Model: "gpt-realtime", Voice: "marin", Instructions: "Be brief.", APIKeyEnv: "MY_KEY", AudioFormat: "pcm16"}) {
		t.Fatalf("openai = %+v", o)
	}
	d, _ := p.Default()
	if o := d.Target.OpenAI; o == nil || o.APIKeyEnv != DefaultAPIKeyEnv || o.AudioFormat != "g711_ulaw" {
		t.Fatalf("defaults = %+v", o)
	}
}

func TestOpenAITargetErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"{type: agent, protocol: openai-realtime, audio_format: mp3}", `dp.yaml:4:68: target.audio_format: "mp3"; allowed: g711_ulaw`},
		{"{type: agent, protocol: openai-realtime, api_key_env: 1KEY}", `dp.yaml:4:67: target.api_key_env: "1KEY" is not an environment variable name`},
		{"{type: agent, protocol: openai-realtime, model: \"\"}", `dp.yaml:4:61: target.model: empty`},
		{"{type: agent, protocol: twilio, url: \"ws://x\", voice: marin}", `dp.yaml:4:60: target.voice: only for protocol: openai-realtime`},
		{"{type: echo, model: x}", `dp.yaml:4:26: target of type echo: unknown key "model"`},
	} {
		_, err := Parse("dp.yaml", []byte("routes:\n  - name: r\n    match: { to: x }\n    target: "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}
