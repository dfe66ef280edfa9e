package dialplan

import (
	"net/url"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// TypeRoom puts the caller into a WebRTC room: a LiveKit room, or one
// Switchboard hosts itself (target.room).
const TypeRoom = "room"

// Room kinds, the one key of target.room.
const (
	RoomLiveKit = "livekit"
	RoomBuiltin = "builtin"
)

// DefaultLiveKitSecretEnv is where a LiveKit target's API secret is read from
// when api_secret_env is unset (LiveKit's own CLI uses the same name).
const DefaultLiveKitSecretEnv = "LIVEKIT_API_SECRET"

// Default identity and name of the caller's participant, as LiveKit's SIP
// service names them.
const (
	DefaultLiveKitIdentity = "sip_{{.From}}"
	DefaultLiveKitName     = "Phone {{.From}}"
)

var (
	roomKinds   = []string{RoomLiveKit, RoomBuiltin}
	liveKitKeys = []string{"url", "api_key", "api_secret_env", "room", "identity", "name", "headers"}
)

// Room is a room target's room: exactly one of its kinds is set.
type Room struct {
	LiveKit *LiveKit
	Builtin *BuiltinRoom
}

// LiveKit is a room on a LiveKit server that the call joins as a participant.
type LiveKit struct {
	URL          string // ws://, wss://, http:// or https:// of the server
	APIKey       string
	APISecretEnv string // environment variable holding the API secret
	// Room, Identity and Name are rendered per call with the params fields
	// (.From .To .CallID .Route, {{.Header "X-Name"}}).
	Room, Identity, Name *template.Template
	// Headers are INVITE headers copied into participant attributes as
	// sip.h.<lower-case name>.
	Headers []string
}

// BuiltinRoom is a room Switchboard hosts itself.
type BuiltinRoom struct {
	Name *template.Template
}

// Render executes t for one call.
func Render(t *template.Template, c CallData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, c); err != nil {
		return "", err
	}
	return b.String(), nil
}

// roomTarget decodes target.room of a room target.
func (d *decoder) roomTarget(t *Target, n *yaml.Node, fs yamlfile.Fields) bool {
	want := "{livekit: {url, api_key, room, ...}} or {builtin: {name}}"
	f, has := fs.Get("room")
	if !has {
		d.Errorf(n, "target of type room needs room: %s", want)
		return false
	}
	rfs, ok := d.Mapping(f.Value, "target.room", "a mapping "+want, roomKinds)
	if !ok {
		return false
	}
	if len(rfs) != 1 {
		if n := yamlfile.Resolve(f.Value); len(n.Content) == 2*len(rfs) { // else the stray key is reported already
			d.Errorf(f.Value, "target.room: want exactly one of %s, got %d", strings.Join(roomKinds, ", "), len(rfs))
		}
		return false
	}
	t.Room = &Room{}
	switch k := rfs[0]; k.Name {
	case RoomLiveKit:
		return d.liveKit(t.Room, k)
	case RoomBuiltin:
		return d.builtinRoom(t.Room, k)
	}
	return false
}

func (d *decoder) liveKit(r *Room, f yamlfile.Field) bool {
	fs, ok := d.Mapping(f.Value, "target.room.livekit", "a mapping {url, api_key, api_secret_env, room, identity, name, headers}", liveKitKeys)
	if !ok {
		return false
	}
	lk := &LiveKit{APISecretEnv: DefaultLiveKitSecretEnv}
	need := func(key, want string) (*yaml.Node, string, bool) {
		kf, has := fs.Get(key)
		if !has {
			d.Errorf(f.Value, "target.room.livekit needs %s: %s", key, want)
			return nil, "", false
		}
		v, valid := d.Str(kf.Value, "target.room.livekit."+key)
		if valid && v == "" {
			d.Errorf(kf.Value, "target.room.livekit.%s: empty; want %s", key, want)
			valid = false
		}
		return kf.Value, v, valid
	}
	if n, v, valid := need("url", "the server's ws:// or wss:// URL"); valid {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || (u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
			d.Errorf(n, "target.room.livekit.url: %q; want the server's ws:// or wss:// URL", v)
			ok = false
		}
		lk.URL = v
	} else {
		ok = false
	}
	if _, v, valid := need("api_key", "the LiveKit API key"); valid {
		lk.APIKey = v
	} else {
		ok = false
	}
	if kf, has := fs.Get("api_secret_env"); has {
		v, valid := d.Str(kf.Value, "target.room.livekit.api_secret_env")
		if valid && !envName.MatchString(v) {
			d.Errorf(kf.Value, "target.room.livekit.api_secret_env: %q is not an environment variable name; want e.g. %s", v, DefaultLiveKitSecretEnv)
			valid = false
		}
		ok = ok && valid
		lk.APISecretEnv = v
	}
	tmpl := func(key, def string, dst **template.Template) {
		text := def
		kf, has := fs.Get(key)
		if has {
			v, valid := d.Str(kf.Value, "target.room.livekit."+key)
			if !valid {
				ok = false
				return
			}
			if v == "" {
				d.Errorf(kf.Value, "target.room.livekit.%s: empty; want a template such as %q", key, def)
				ok = false
				return
			}
			text = v
		} else if def == "" {
			d.Errorf(f.Value, `target.room.livekit needs room: a room name or template, such as "call-{{.CallID}}"`)
			ok = false
			return
		}
		t, err := parseParam(key, text)
		if err != nil {
			d.Errorf(kf.Value, "target.room.livekit.%s: %v; fields: .From .To .CallID .Route, {{.Header \"X-Name\"}}",
				key, strings.TrimPrefix(err.Error(), "template: "))
			ok = false
			return
		}
		*dst = t
	}
	tmpl("room", "", &lk.Room)
	tmpl("identity", DefaultLiveKitIdentity, &lk.Identity)
	tmpl("name", DefaultLiveKitName, &lk.Name)
	if kf, has := fs.Get("headers"); has && !yamlfile.IsNull(kf.Value) {
		n := yamlfile.Resolve(kf.Value)
		if n.Kind != yaml.SequenceNode {
			d.Errorf(n, "target.room.livekit.headers: want a list of SIP header names, got %s", yamlfile.Describe(n))
			ok = false
		} else {
			for _, item := range n.Content {
				h, valid := d.Str(item, "target.room.livekit.headers[]")
				if valid && (h == "" || strings.ContainsAny(h, " :\t")) {
					d.Errorf(item, "target.room.livekit.headers: %q is not a header name; want e.g. X-Customer-Id", h)
					valid = false
				}
				ok = ok && valid
				lk.Headers = append(lk.Headers, h)
			}
		}
	}
	r.LiveKit = lk
	return ok
}

func (d *decoder) builtinRoom(r *Room, f yamlfile.Field) bool {
	fs, ok := d.Mapping(f.Value, "target.room.builtin", "a mapping {name: template}", []string{"name"})
	if !ok {
		return false
	}
	nf, has := fs.Get("name")
	if !has {
		d.Errorf(f.Value, `target.room.builtin needs name: a room name or template, such as "support"`)
		return false
	}
	v, valid := d.Str(nf.Value, "target.room.builtin.name")
	if !valid {
		return false
	}
	if v == "" {
		d.Errorf(nf.Value, "target.room.builtin.name: empty; want a room name or template")
		return false
	}
	t, err := parseParam("name", v)
	if err != nil {
		d.Errorf(nf.Value, "target.room.builtin.name: %v; fields: .From .To .CallID .Route, {{.Header \"X-Name\"}}",
			strings.TrimPrefix(err.Error(), "template: "))
		return false
	}
	r.Builtin = &BuiltinRoom{Name: t}
	return true
}
