package dialplan

import (
	"net"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

const transferWant = `a SIP URI ("sip:agent@pbx.example.com") or a number ("+49 30 123456")`

// transferTarget decodes {type: transfer, to: URI|number, trunk: name}: a
// number goes out through a trunk, so it needs one; a SIP URI may name one.
func (d *decoder) transferTarget(t *Target, n *yaml.Node, fs yamlfile.Fields) bool {
	ok := true
	if f, has := fs.Get("trunk"); has {
		name, valid := d.Str(f.Value, "target.trunk")
		if valid && name == "" {
			d.Errorf(f.Value, "target.trunk: empty; want a trunk name from the config")
			valid = false
		}
		ok = ok && valid
		t.Trunk = name
	}
	f, has := fs.Get("to")
	if !has {
		d.Errorf(n, "target of type transfer needs to: %s", transferWant)
		return false
	}
	to, valid := d.Str(f.Value, "target.to")
	if !valid {
		return false
	}
	if scheme, _, isURI := strings.Cut(to, ":"); isURI && (strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips")) {
		if msg := checkSIPURI(to); msg != "" {
			d.Errorf(f.Value, "target.to: %q %s; want %s", to, msg, transferWant)
			return false
		}
		t.To = to
		return ok
	}
	num, isNum := Dialable(to)
	if !isNum {
		d.Errorf(f.Value, "target.to: %q is neither a SIP URI nor a number; want %s", to, transferWant)
		return false
	}
	t.To = num
	if t.Trunk == "" {
		d.Errorf(n, "target of type transfer to a number needs trunk: the outbound trunk to dial %s through", num)
		ok = false
	}
	return ok
}

// checkSIPURI says what is wrong with a sip:/sips: URI, "" if nothing:
// a host, an optional user before @, an optional port in range.
func checkSIPURI(uri string) string {
	_, rest, _ := strings.Cut(uri, ":")
	rest, _, _ = strings.Cut(rest, ";") // URI parameters
	rest, _, _ = strings.Cut(rest, "?") // headers
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if i == 0 {
			return "has an empty user before @"
		}
		rest = rest[i+1:]
	}
	host, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1]
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return "has no valid host"
	}
	if port != "" {
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return "has a bad port " + strconv.Quote(port)
		}
	}
	return ""
}
