package dialplan

import (
	"regexp"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// OpenAI Realtime target keys (protocol: openai-realtime).
var openaiKeys = []string{"model", "voice", "instructions", "api_key_env", "audio_format"}

// DefaultAPIKeyEnv is where an openai-realtime target's key is read from when
// api_key_env is unset.
const DefaultAPIKeyEnv = "OPENAI_API_KEY"

// OpenAI is the model session of a protocol: openai-realtime target.
type OpenAI struct {
	Model        string // empty: the agent's default
	Voice        string
	Instructions string
	APIKeyEnv    string // environment variable holding the API key
	AudioFormat  string // g711_ulaw (default: the call's own G.711, no transcoding) | pcm16 (24 kHz)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// openaiTarget decodes the OpenAI keys of an agent target.
func (d *decoder) openaiTarget(t *Target, fs yamlfile.Fields) bool {
	ok := true
	if t.Protocol != ProtocolOpenAI {
		for _, k := range openaiKeys {
			if f, has := fs.Get(k); has {
				d.Errorf(f.Key, "target.%s: only for protocol: %s", k, ProtocolOpenAI)
				ok = false
			}
		}
		return ok
	}
	o := &OpenAI{APIKeyEnv: DefaultAPIKeyEnv, AudioFormat: "g711_ulaw"}
	str := func(key string, dst *string, allowEmpty bool) (*string, bool) {
		f, has := fs.Get(key)
		if !has {
			return nil, true
		}
		v, valid := d.Str(f.Value, "target."+key)
		if valid && v == "" && !allowEmpty {
			d.Errorf(f.Value, "target.%s: empty; leave it out for the default", key)
			valid = false
		}
		*dst = v
		return &v, valid
	}
	for _, k := range []struct {
		key   string
		dst   *string
		empty bool
	}{{"model", &o.Model, false}, {"voice", &o.Voice, false}, {"instructions", &o.Instructions, true}} {
		if _, valid := str(k.key, k.dst, k.empty); !valid {
			ok = false
		}
	}
	if v, valid := str("api_key_env", &o.APIKeyEnv, false); !valid {
		ok = false
	} else if v != nil && !envName.MatchString(*v) {
		f, _ := fs.Get("api_key_env")
		d.Errorf(f.Value, "target.api_key_env: %q is not an environment variable name; want e.g. %s", *v, DefaultAPIKeyEnv)
		ok = false
	}
	if v, valid := str("audio_format", &o.AudioFormat, false); !valid {
		ok = false
	} else if v != nil && *v != "g711_ulaw" && *v != "pcm16" {
		f, _ := fs.Get("audio_format")
		d.Errorf(f.Value, "target.audio_format: %q; allowed: g711_ulaw (the call's G.711, no transcoding), pcm16 (24 kHz)", *v)
		ok = false
	}
	t.OpenAI = o
	return ok
}
