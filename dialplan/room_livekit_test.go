package dialplan

import (
	"strings"
	"testing"
)

func TestLiveKitRoomTarget(t *testing.T) {
	p, err := Parse("dp.yaml", []byte(`routes:
  - name: lk
    match: { to: "~^support" }
    target:
      type: room
      room:
        livekit:
          url: wss://lk.example.com
          api_key: APIabc
          api_secret_env: LK_SECRET
          room: "call-{{.To}}-{{.CallID}}"
          identity: "sip-{{.From}}"
          headers: [X-Customer-Id]
default:
  target: { type: room, room: { livekit: { url: "ws://10.0.0.1:7880", api_key: k, room: lobby } } }
`))
	if err != nil {
		t.Fatal(err)
	}
	lk := p.Routes()[0].Target.Room.LiveKit
	if lk == nil || lk.URL != "wss://lk.example.com" || lk.APIKey != "APIabc" || lk.APISecretEnv != "LK_SECRET" ||
		len(lk.Headers) != 1 || lk.Headers[0] != "X-Customer-Id" {
		t.Fatalf("livekit = %+v", lk)
	}
	data := CallData{From: "+4930123", To: "support", CallID: "abc"}
	for _, c := range []struct{ got, want string }{
		{must(Render(lk.Room, data)), "call-support-abc"},
		{must(Render(lk.Identity, data)), "sip-+4930123"},
		{must(Render(lk.Name, data)), "Phone +4930123"}, // the default
	} {
		if c.got != c.want {
			t.Errorf("rendered %q, want %q", c.got, c.want)
		}
	}
	d, _ := p.Default()
	if lk := d.Target.Room.LiveKit; lk.APISecretEnv != DefaultLiveKitSecretEnv || must(Render(lk.Identity, data)) != "sip_+4930123" {
		t.Fatalf("defaults: secret env %q, identity %q", lk.APISecretEnv, must(Render(lk.Identity, data)))
	}
}

func must(s string, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}

func TestLiveKitRoomTargetErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"{type: room}", `dp.yaml:4:13: target of type room needs room:`},
		{"{type: room, room: {zoom: {}}}", `dp.yaml:4:33: target.room: unknown key "zoom"; allowed: livekit, builtin`},
		{"{type: room, room: {livekit: {api_key: k, room: r}}}", `dp.yaml:4:42: target.room.livekit needs url:`},
		{"{type: room, room: {livekit: {url: \"http//x\", api_key: k, room: r}}}", `dp.yaml:4:48: target.room.livekit.url: "http//x"; want the server's ws:// or wss:// URL`},
		{"{type: room, room: {livekit: {url: \"ws://x\", room: r}}}", `target.room.livekit needs api_key:`},
		{"{type: room, room: {livekit: {url: \"ws://x\", api_key: k}}}", `target.room.livekit needs room: a room name or template`},
		{"{type: room, room: {livekit: {url: \"ws://x\", api_key: k, room: \"{{.Frm}}\"}}}", `dp.yaml:4:76: target.room.livekit.room: room:1:2: executing "room" at <.Frm>`},
		{"{type: room, room: {livekit: {url: \"ws://x\", api_key: k, room: r, api_secret_env: 9X}}}", `target.room.livekit.api_secret_env: "9X" is not an environment variable name`},
		{"{type: room, room: {livekit: {url: \"ws://x\", api_key: k, room: r, headers: \"X-A\"}}}", `target.room.livekit.headers: want a list of SIP header names`},
		{"{type: room, room: {livekit: {url: \"ws://x\", api_key: k, room: r, rooom: x}}}", `target.room.livekit: unknown key "rooom"`},
		{"{type: echo, room: {livekit: {}}}", `target of type echo: unknown key "room"`},
		{"{type: room, room: {}}", `dp.yaml:4:32: target.room: want exactly one of livekit, builtin, got 0`},
	} {
		_, err := Parse("dp.yaml", []byte("routes:\n  - name: r\n    match: { to: x }\n    target: "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}
