package dialplan

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

var (
	topKeys     = []string{"routes", "default"}
	routeKeys   = []string{"name", "match", "target", "fallback", "on_failure", "record", "ring", "max_duration", "transfer_method"}
	defaultKeys = []string{"target", "fallback", "on_failure", "record", "ring", "max_duration", "transfer_method"}
	targetTypes = []string{TypeEcho, TypePlay, TypeReject, TypeAgent, TypeRoom, TypeTransfer}
	// targetKeys are the keys each target type takes, "type" first.
	targetKeys = map[string][]string{
		TypeEcho:   {"type"},
		TypePlay:   {"type", "file"},
		TypeReject: {"type", "status", "reason"},
		TypeAgent: {"type", "agent", "url", "protocol", "connect_timeout", "chunk_ms", "params", "headers",
			"model", "voice", "instructions", "api_key_env", "audio_format"},
		TypeRoom:     {"type", "room"},
		TypeTransfer: {"type", "to", "trunk"},
	}
	allTargetKeys = []string{"type", "file", "status", "reason", "agent", "url", "protocol", "connect_timeout", "chunk_ms", "params", "headers",
		"model", "voice", "instructions", "api_key_env", "audio_format", "room", "to", "trunk"}
	protocols = []string{ProtocolTwilio, ProtocolSwitchboard, ProtocolAudioSocket, ProtocolOpenAI}
)

// tildeHint follows "want a string, got null" for a bare ~, which is YAML for
// null but, unquoted, is also how a regular-expression pattern starts.
const tildeHint = " (a bare ~ is YAML for null; quote a regular expression: \"~^...$\")"

// decoder adds the dialplan schema to the generic YAML decoder.
type decoder struct {
	yamlfile.Decoder
}

// defaultName is the Name of the default route, so no route may take it.
const defaultName = "default"

// Load reads and parses the dialplan at path. Relative play files are resolved
// against path's directory. A parse failure is an Errors, one "file:line:col: message" per problem.
func Load(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dialplan: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a dialplan; name is used in errors and its directory resolves
// relative play files. Existence of those files is left to whoever plays them.
func Parse(name string, data []byte) (*Plan, error) {
	d := &decoder{yamlfile.Decoder{File: name, TildeHint: tildeHint}}
	root, ok := d.Document(data)
	if !ok {
		return nil, d.Err()
	}
	if root == nil {
		d.ErrorAt(1, 1, "empty dialplan; want a mapping with routes: (a list) and/or default: {target: ...}")
		return nil, d.Err()
	}
	p := &Plan{File: name}
	d.plan(p, root, filepath.Dir(name))
	if err := d.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

func (d *decoder) plan(p *Plan, n *yaml.Node, dir string) {
	fs, ok := d.Mapping(n, "dialplan", "a mapping with keys routes, default", topKeys)
	if !ok {
		return
	}
	if f, ok := fs.Get("routes"); ok {
		p.routes = d.routes(f.Value, dir)
	}
	if f, ok := fs.Get("default"); ok {
		p.def = d.defaultRoute(f, dir)
	}
	_, hasRoutes := fs.Get("routes")
	_, hasDefault := fs.Get("default")
	if !hasRoutes && !hasDefault && !d.Failed() {
		d.Errorf(n, "dialplan has neither routes nor default; want at least one")
	}
}

func (d *decoder) routes(n *yaml.Node, dir string) []*Route {
	if yamlfile.IsNull(n) {
		return nil // "routes:" with every entry commented out
	}
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "routes: want a list of {name, match, target}, got %s", yamlfile.Describe(n))
		return nil
	}
	var routes []*Route
	seen := map[string]int{} // name → line
	for _, item := range n.Content {
		r, ok := d.route(yamlfile.Resolve(item), dir, seen)
		if ok {
			routes = append(routes, r)
		}
	}
	return routes
}

func (d *decoder) route(n *yaml.Node, dir string, seen map[string]int) (*Route, bool) {
	fs, ok := d.Mapping(n, "route", "a mapping with keys name, match, target", routeKeys)
	if !ok {
		return nil, false
	}
	r := &Route{Line: n.Line}
	ok = true
	label := "route"
	if f, has := fs.Get("name"); has && f.Value.Kind == yaml.ScalarNode && f.Value.Value != "" {
		label = fmt.Sprintf("route %q", f.Value.Value)
	}
	if f, has := fs.Get("name"); !has {
		d.Errorf(n, "route is missing name; every route needs a unique name")
		ok = false
	} else if name, valid := d.Str(f.Value, "name"); !valid {
		ok = false
	} else if name == "" {
		d.Errorf(f.Value, "name: empty; every route needs a unique name")
		ok = false
	} else if name == defaultName {
		d.Errorf(f.Value, "name: %q is reserved for the default: section; pick another name", name)
		ok = false
	} else if line, dup := seen[name]; dup {
		d.Errorf(f.Value, "duplicate route name %q (first at line %d); names must be unique", name, line)
		ok = false
	} else {
		seen[name] = f.Value.Line
		r.Name = name
	}

	if f, has := fs.Get("match"); !has {
		d.Errorf(n, "%s has no match; want match: {to: ..., from: ..., trunk: ..., source: ..., headers: ..., time: ...} (use default: for a catch-all)", label)
		ok = false
	} else if !d.match(r, f.Value, label) {
		ok = false
	}

	if f, has := fs.Get("target"); !has {
		d.Errorf(n, "%s has no target; want target: {type: %s, ...}", label, strings.Join(targetTypes, "|"))
		ok = false
	} else if t, valid := d.target(f.Value, dir); !valid {
		ok = false
	} else {
		r.Target = t
	}
	ok = d.failure(r, fs, dir) && ok
	ok = d.settings(r, fs) && ok
	return r, ok
}

func (d *decoder) target(n *yaml.Node, dir string) (Target, bool) {
	n = yamlfile.Resolve(n)
	want := fmt.Sprintf("a mapping {type: %s, ...}", strings.Join(targetTypes, "|"))
	fs, ok := d.Mapping(n, "target", want, nil)
	if !ok {
		return Target{}, false
	}
	var t Target
	tf, has := fs.Get("type")
	if !has {
		d.Errorf(n, "target is missing type; allowed: %s", strings.Join(targetTypes, ", "))
		d.onlyKeys(fs, "target", allTargetKeys)
		return Target{}, false
	}
	typ, ok := d.Str(tf.Value, "target.type")
	if !ok {
		d.onlyKeys(fs, "target", allTargetKeys)
		return Target{}, false
	}
	keys, known := targetKeys[typ]
	if !known {
		d.Errorf(tf.Value, "unknown target type %q; allowed: %s", typ, strings.Join(targetTypes, ", "))
		d.onlyKeys(fs, "target", allTargetKeys)
		return Target{}, false
	}
	t.Type = typ
	ok = d.onlyKeys(fs, "target of type "+typ, keys)
	need := func(key, want string) (yamlfile.Field, bool) {
		f, has := fs.Get(key)
		if !has {
			d.Errorf(n, "target of type %s needs %s: %s", typ, key, want)
			ok = false
		}
		return f, has
	}
	optional := func(key string, dst *string) {
		if f, has := fs.Get(key); has {
			v, valid := d.Str(f.Value, "target."+key)
			ok = ok && valid
			*dst = v
		}
	}
	switch typ {
	case TypePlay:
		if f, has := need("file", "a WAV path, relative to the dialplan's directory"); has {
			file, valid := d.Str(f.Value, "target.file")
			switch {
			case !valid:
				ok = false
			case file == "":
				d.Errorf(f.Value, "target.file: empty; want a WAV path")
				ok = false
			case !filepath.IsAbs(file):
				file = filepath.Join(dir, file)
			}
			t.File = file
		}
	case TypeReject:
		if f, has := need("status", "a SIP status 400–699"); has {
			status, valid := d.Integer(f.Value, "target.status", "a SIP status 400–699")
			if valid && (status < 400 || status > 699) {
				d.Errorf(f.Value, "target.status: %d is not a failure status; want 400–699", status)
				valid = false
			}
			ok = ok && valid
			t.Status = status
		}
		optional("reason", &t.Reason)
	case TypeAgent:
		ok = d.agentTarget(&t, n, fs) && ok
	case TypeRoom:
		ok = d.roomTarget(&t, n, fs) && ok
	case TypeTransfer:
		ok = d.transferTarget(&t, n, fs) && ok
	}
	return t, ok
}

// onlyKeys reports keys of fs not in allowed.
func (d *decoder) onlyKeys(fs yamlfile.Fields, what string, allowed []string) bool {
	ok := true
	for _, f := range fs {
		if !slices.Contains(allowed, f.Name) {
			d.Errorf(f.Key, "%s: unknown key %q; allowed: %s", what, f.Name, strings.Join(allowed, ", "))
			ok = false
		}
	}
	return ok
}

func (d *decoder) defaultRoute(f yamlfile.Field, dir string) *Route {
	fs, ok := d.Mapping(f.Value, "default", "a mapping {target: {...}}", defaultKeys)
	if !ok {
		return nil
	}
	tf, has := fs.Get("target")
	if !has {
		d.Errorf(f.Value, "default has no target; want default: {target: {type: %s, ...}}", strings.Join(targetTypes, "|"))
		return nil
	}
	t, ok := d.target(tf.Value, dir)
	r := &Route{Name: defaultName, Line: f.Key.Line, Target: t}
	ok = d.settings(r, fs) && ok
	if !d.failure(r, fs, dir) || !ok {
		return nil
	}
	return r
}

// record reads the optional record: true|false of a route.
func (d *decoder) record(r *Route, fs yamlfile.Fields) bool {
	f, has := fs.Get("record")
	if !has {
		return true
	}
	n := yamlfile.Resolve(f.Value)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.Errorf(n, "record: want true or false, got %s", yamlfile.Describe(n))
		return false
	}
	r.Record = strings.EqualFold(n.Value, "true")
	return true
}
