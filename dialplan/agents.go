package dialplan

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// maxConnectTimeout keeps a caller from hearing ringing for longer than a
// carrier's own INVITE timer.
const maxConnectTimeout = time.Minute

// agentTarget decodes the keys of an agent target: a built-in agent by name,
// or a bot reached over protocol at url.
func (d *decoder) agentTarget(t *Target, n *yaml.Node, fs yamlfile.Fields) bool {
	ok := true
	if f, has := fs.Get("agent"); has {
		name, valid := d.Str(f.Value, "target.agent")
		if valid && name == "" {
			d.Errorf(f.Value, "target.agent: empty; want an agent name (built in: default)")
			valid = false
		}
		ok = ok && valid
		t.Agent = name
	}
	pf, hasProto := fs.Get("protocol")
	if _, hasAgent := fs.Get("agent"); !hasAgent && !hasProto {
		d.Errorf(n, "target of type agent needs agent: an agent name (built in: default), or protocol: %s with url:",
			strings.Join(protocols, "|"))
		return false
	}
	if hasProto {
		p, valid := d.Str(pf.Value, "target.protocol")
		if valid && !slices.Contains(protocols, p) {
			d.Errorf(pf.Value, "target.protocol: unknown protocol %q; allowed: %s", p, strings.Join(protocols, ", "))
			valid = false
		}
		ok = ok && valid
		t.Protocol = p
		t.ConnectTimeout = DefaultConnectTimeout
	}
	if f, has := fs.Get("url"); has {
		u, valid := d.Str(f.Value, "target.url")
		if valid && t.Protocol != "" {
			valid = d.agentURL(f.Value, t.Protocol, u)
		}
		ok = ok && valid
		t.URL = u
	} else if t.Protocol != "" && t.Protocol != ProtocolOpenAI {
		d.Errorf(n, "target with protocol %s needs url: %s", t.Protocol, urlWant(t.Protocol))
		ok = false
	}
	if f, has := fs.Get("connect_timeout"); has {
		ok = d.connectTimeout(t, f) && ok
	}
	if f, has := fs.Get("chunk_ms"); has {
		ok = d.chunkMs(t, f) && ok
	}
	if f, has := fs.Get("params"); has {
		ok = d.params(t, f) && ok
	}
	if f, has := fs.Get("headers"); has {
		ok = d.agentHeaders(t, f) && ok
	}
	ok = d.openaiTarget(t, fs) && ok
	return ok
}

func urlWant(protocol string) string {
	if protocol == ProtocolAudioSocket {
		return "host:port of the AudioSocket server"
	}
	return "a ws:// or wss:// URL"
}

func (d *decoder) agentURL(n *yaml.Node, protocol, raw string) bool {
	if protocol == ProtocolAudioSocket {
		_, port, err := net.SplitHostPort(strings.TrimPrefix(raw, "tcp://"))
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p <= 0 || p > 65535 {
			d.Errorf(n, "target.url: %q is not host:port; want %s", raw, urlWant(protocol))
			return false
		}
		return true
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		d.Errorf(n, "target.url: %q; want %s", raw, urlWant(protocol))
		return false
	}
	return true
}

func (d *decoder) connectTimeout(t *Target, f yamlfile.Field) bool {
	const want = `a duration such as "3s" or "500ms", at most 1m`
	if t.Protocol == "" {
		d.Errorf(f.Key, "target.connect_timeout: only for a target with protocol:")
		return false
	}
	s, ok := d.Str(f.Value, "target.connect_timeout")
	if !ok {
		return false
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 || v > maxConnectTimeout {
		d.Errorf(f.Value, "target.connect_timeout: %q; want %s", s, want)
		return false
	}
	t.ConnectTimeout = v
	return true
}

// chunkMs decodes how much audio goes in each media message to a Twilio bot.
func (d *decoder) chunkMs(t *Target, f yamlfile.Field) bool {
	const want = "20 (the default, as Twilio sends), 40, 60, 80 or 100"
	if t.Protocol != ProtocolTwilio {
		d.Errorf(f.Key, "target.chunk_ms: only for protocol: %s", ProtocolTwilio)
		return false
	}
	v, ok := d.Integer(f.Value, "target.chunk_ms", want)
	if !ok {
		return false
	}
	if v < 20 || v > 100 || v%20 != 0 {
		d.Errorf(f.Value, "target.chunk_ms: %d; want %s", v, want)
		return false
	}
	t.ChunkMs = v
	return true
}

func (d *decoder) params(t *Target, f yamlfile.Field) bool {
	if yamlfile.IsNull(f.Value) {
		return true
	}
	fs, ok := d.Mapping(f.Value, "target.params", `a mapping of name: template, such as {caller: "{{.From}}"}`, nil)
	if !ok {
		return false
	}
	p := &Params{}
	for _, pf := range fs {
		text, valid := d.StrOrEmpty(pf.Value, "target.params."+pf.Name)
		if !valid {
			ok = false
			continue
		}
		tmpl, err := parseParam(pf.Name, text)
		if err != nil {
			d.Errorf(pf.Value, "target.params.%s: %v; fields: .From .To .CallID .Route, {{.Header \"X-Name\"}}",
				pf.Name, strings.TrimPrefix(err.Error(), "template: "))
			ok = false
			continue
		}
		p.names = append(p.names, pf.Name)
		p.tmpls = append(p.tmpls, tmpl)
	}
	if len(p.names) > 0 {
		t.Params = p
	}
	return ok
}

// failure decodes a route's fallback list and on_failure status.
func (d *decoder) failure(r *Route, fs yamlfile.Fields, dir string) bool {
	ok := true
	r.FailStatus = 503
	if f, has := fs.Get("fallback"); has && !yamlfile.IsNull(f.Value) {
		if f.Value.Kind != yaml.SequenceNode {
			d.Errorf(f.Value, "fallback: want a list of targets tried in order, got %s", yamlfile.Describe(f.Value))
			ok = false
		} else {
			for _, item := range f.Value.Content {
				t, valid := d.target(item, dir)
				ok = ok && valid
				r.Fallback = append(r.Fallback, t)
			}
		}
	}
	if f, has := fs.Get("on_failure"); has {
		of, valid := d.Mapping(f.Value, "on_failure", "a mapping {status: 503}", []string{"status"})
		if !valid {
			return false
		}
		sf, has := of.Get("status")
		if !has {
			d.Errorf(f.Value, "on_failure needs status: a SIP status 400–699 (503 lets a carrier fail over)")
			return false
		}
		status, valid := d.Integer(sf.Value, "on_failure.status", "a SIP status 400–699")
		if valid && (status < 400 || status > 699) {
			d.Errorf(sf.Value, "on_failure.status: %d is not a failure status; want 400–699", status)
			valid = false
		}
		ok = ok && valid
		r.FailStatus = status
	}
	return ok
}

// agentHeaders reads headers: a list of SIP header names whose values the
// agent gets alongside params (a param of the same name is an error).
func (d *decoder) agentHeaders(t *Target, f yamlfile.Field) bool {
	items, ok := d.strings1(f.Value, "target.headers")
	var names []string
	for _, it := range items {
		h, valid := d.Str(it, "target.headers")
		switch {
		case !valid:
			ok = false
		case !headerName.MatchString(h):
			d.Errorf(it, "target.headers: %q is not a SIP header name; want e.g. X-Twilio-AccountSid", h)
			ok = false
		case slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, h) }):
			d.Errorf(it, "target.headers: %s listed twice", h)
			ok = false
		case slices.Contains(t.Params.Names(), h):
			d.Errorf(it, "target.headers: %s is also a param; rename the param", h)
			ok = false
		default:
			names = append(names, h)
		}
	}
	if ok && len(names) > 0 {
		if t.Params == nil {
			t.Params = &Params{}
		}
		t.Params.headers = names
	}
	return ok
}
