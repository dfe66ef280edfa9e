package config

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
	"github.com/switchboard-voip/switchboard/sip"
)

// Trunk is one carrier: the calls it may send us, the calls we send it, or both.
type Trunk struct {
	Name     string
	Line     int
	Inbound  *InboundTrunk  // nil: it never calls in
	Outbound *OutboundTrunk // nil: we never call out through it
}

// InboundTrunk says how a carrier's INVITEs are recognised.
type InboundTrunk struct {
	Allow          []netip.Prefix // source CIDRs; empty: any source, auth required
	AuthUser       string         // digest user; "" for no auth
	AuthPassword   string         // read from password_env at load
	UnknownSource  string         // reject (403) | silent (no answer)
	MaxCalls       int
	CallsPerSecond float64
}

// OutboundTrunk says how calls reach a carrier.
type OutboundTrunk struct {
	Host                string
	Port                int    // 0: DNS SRV (RFC 3263), or 5060 for an IP
	Transport           string // udp | tcp
	AuthUser            string
	AuthPassword        string
	CallerID            string
	RegisterExpires     time.Duration // 0: no REGISTER
	OptionsPing         time.Duration // 0: no pings
	MaxCalls            int
	CallsPerSecond      float64
	AllowedDestinations []string
	FailoverTimeout     time.Duration
}

var unknownSources = []string{"reject", "silent"}

func (d *decoder) trunks(n *yaml.Node) []Trunk {
	if yamlfile.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "trunks: want a list of {name, inbound, outbound}, got %s", yamlfile.Describe(n))
		return nil
	}
	var out []Trunk
	seen := map[string]int{}
	users := map[string]int{}
	for _, item := range n.Content {
		item = yamlfile.Resolve(item)
		fs, ok := d.Mapping(item, "trunks", "a mapping {name, inbound, outbound}", []string{"name", "inbound", "outbound"})
		if !ok {
			continue
		}
		t := Trunk{Line: item.Line}
		nf, has := fs.Get("name")
		if !has {
			d.Errorf(item, "trunks: entry is missing name")
		} else if v, ok := d.Str(nf.Value, "trunks.name"); ok {
			if v == "" || strings.ContainsAny(v, " \t/") {
				d.Errorf(nf.Value, "trunks.name: %q; want a non-empty name without spaces or /", v)
			} else if line, dup := seen[v]; dup {
				d.Errorf(nf.Value, "trunks.name: %q is used twice (first at line %d)", v, line)
			} else {
				seen[v] = nf.Value.Line
				t.Name = v
			}
		}
		for _, f := range fs {
			switch f.Name {
			case "inbound":
				t.Inbound = d.inboundTrunk(f.Value, users)
			case "outbound":
				t.Outbound = d.outboundTrunk(f.Value)
			}
		}
		if t.Inbound == nil && t.Outbound == nil && has {
			d.Errorf(item, "trunks: %q has neither inbound nor outbound", t.Name)
		}
		out = append(out, t)
	}
	return out
}

func (d *decoder) inboundTrunk(n *yaml.Node, users map[string]int) *InboundTrunk {
	t := &InboundTrunk{UnknownSource: "reject"}
	keys := []string{"allow", "auth", "unknown_source", "max_calls", "calls_per_second"}
	fs, ok := d.Mapping(n, "trunks.inbound", "a mapping with keys "+strings.Join(keys, ", "), keys)
	if !ok {
		return nil
	}
	for _, f := range fs {
		switch f.Name {
		case "allow":
			t.Allow = d.cidrs(f.Value)
		case "auth":
			var at *yaml.Node
			t.AuthUser, t.AuthPassword, at = d.auth(f.Value, "trunks.inbound.auth")
			if at != nil {
				if line, dup := users[t.AuthUser]; dup {
					d.Errorf(at, "trunks.inbound.auth.user: %q is used by another trunk (line %d); digest users must be unique", t.AuthUser, line)
				}
				users[t.AuthUser] = at.Line
			}
		case "unknown_source":
			if v, ok := d.oneOf(f.Value, "trunks.inbound.unknown_source", unknownSources); ok {
				t.UnknownSource = v
			}
		case "max_calls":
			t.MaxCalls = d.count(f.Value, "trunks.inbound.max_calls")
		case "calls_per_second":
			t.CallsPerSecond = d.rate(f.Value, "trunks.inbound.calls_per_second")
		}
	}
	if len(t.Allow) == 0 && t.AuthUser == "" {
		d.Errorf(n, "trunks.inbound: needs allow (source CIDRs), auth, or both; otherwise anyone could call in as this trunk")
	}
	return t
}

func (d *decoder) outboundTrunk(n *yaml.Node) *OutboundTrunk {
	t := &OutboundTrunk{Transport: "udp", FailoverTimeout: 4 * time.Second}
	keys := []string{"uri", "host", "port", "transport", "auth", "caller_id", "register", "options_ping",
		"max_calls", "calls_per_second", "allowed_destinations", "failover_timeout"}
	fs, ok := d.Mapping(n, "trunks.outbound", "a mapping with keys "+strings.Join(keys, ", "), keys)
	if !ok {
		return nil
	}
	var transportNode, registerNode, pingNode *yaml.Node
	_, hasURI := fs.Get("uri")
	_, hasHost := fs.Get("host")
	if hasURI && hasHost {
		d.Errorf(n, "trunks.outbound: give uri or host, not both")
	}
	if !hasURI && !hasHost {
		d.Errorf(n, "trunks.outbound: needs uri (sip:carrier.example.com;transport=tcp) or host")
	}
	for _, f := range fs {
		switch f.Name {
		case "uri":
			v, ok := d.Str(f.Value, "trunks.outbound.uri")
			if !ok {
				continue
			}
			host, port, tr, err := sip.ParseTrunkURI(v)
			if err != nil {
				d.Errorf(f.Value, "trunks.outbound.uri: %v; want e.g. sip:carrier.example.com or sip:203.0.113.5:5060;transport=tcp", err)
				continue
			}
			t.Host, t.Port = host, port
			if tr != "" {
				t.Transport, transportNode = tr, f.Value
			}
		case "host":
			if v, ok := d.Str(f.Value, "trunks.outbound.host"); ok {
				if v == "" || strings.ContainsAny(v, " :/@;") {
					d.Errorf(f.Value, "trunks.outbound.host: %q; want an IP address or a DNS name", v)
					continue
				}
				t.Host = v
			}
		case "port":
			p, ok := d.Integer(f.Value, "trunks.outbound.port", "a port 1–65535")
			if ok && (p < 1 || p > 65535) {
				d.Errorf(f.Value, "trunks.outbound.port: %d out of range; want 1–65535 (leave it out for DNS SRV)", p)
			}
			t.Port = p
		case "transport":
			if v, ok := d.oneOf(f.Value, "trunks.outbound.transport", transports); ok {
				t.Transport, transportNode = v, f.Value
			}
		case "auth":
			t.AuthUser, t.AuthPassword, _ = d.auth(f.Value, "trunks.outbound.auth")
		case "caller_id":
			if v, ok := d.StrOrEmpty(f.Value, "trunks.outbound.caller_id"); ok {
				t.CallerID = v
			}
		case "register":
			for _, rf := range d.section(f.Value, "trunks.outbound.register", []string{"expires"}) {
				if v, ok := d.duration(rf.Value, "trunks.outbound.register.expires", "at least 1s"); ok {
					if v < time.Second {
						d.Errorf(rf.Value, "trunks.outbound.register.expires: %s; want at least 1s", v)
					}
					t.RegisterExpires, registerNode = v, rf.Value
				}
			}
			if t.RegisterExpires == 0 && registerNode == nil {
				t.RegisterExpires, registerNode = time.Hour, f.Value
			}
		case "options_ping":
			if v, ok := d.duration(f.Value, "trunks.outbound.options_ping", "0 sends none"); ok {
				t.OptionsPing, pingNode = v, f.Value
			}
		case "max_calls":
			t.MaxCalls = d.count(f.Value, "trunks.outbound.max_calls")
		case "calls_per_second":
			t.CallsPerSecond = d.rate(f.Value, "trunks.outbound.calls_per_second")
		case "allowed_destinations":
			t.AllowedDestinations = d.destinations(f.Value)
		case "failover_timeout":
			if v, ok := d.duration(f.Value, "trunks.outbound.failover_timeout", "e.g. 4s"); ok && v > 0 {
				t.FailoverTimeout = v
			}
		}
	}
	if t.Transport != "udp" && t.Transport != "tcp" && transportNode != nil {
		d.Errorf(transportNode, "trunks.outbound: transport %q not supported; allowed: udp, tcp", t.Transport)
	}
	if t.Transport != "udp" {
		// REGISTER and OPTIONS leave from the UDP listener the carrier answers to.
		for _, at := range []*yaml.Node{registerNode, pingNode} {
			if at != nil {
				d.Errorf(at, "trunks.outbound: register and options_ping need transport udp")
				break
			}
		}
	}
	if _, has := fs.Get("allowed_destinations"); !has {
		d.Errorf(n, "trunks.outbound: needs allowed_destinations (toll-fraud guard), e.g. [\"+1*\"]; nothing is dialled otherwise")
	}
	return t
}

// auth decodes {user, password_env} and reads the password from the environment.
func (d *decoder) auth(n *yaml.Node, what string) (user, password string, userNode *yaml.Node) {
	fs, ok := d.Mapping(n, what, "a mapping {user, password_env}", []string{"user", "password_env"})
	if !ok {
		return "", "", nil
	}
	uf, hasU := fs.Get("user")
	pf, hasP := fs.Get("password_env")
	if !hasU || !hasP {
		d.Errorf(n, "%s: needs user and password_env (the environment variable holding the password)", what)
		return "", "", nil
	}
	user, ok = d.Str(uf.Value, what+".user")
	if !ok || user == "" {
		d.Errorf(uf.Value, "%s.user: empty; want the digest user name", what)
		return "", "", nil
	}
	env, ok := d.Str(pf.Value, what+".password_env")
	if !ok {
		return "", "", nil
	}
	password = os.Getenv(env)
	if password == "" {
		d.Errorf(pf.Value, "%s.password_env: environment variable %s is unset or empty", what, env)
	}
	return user, password, uf.Value
}

func (d *decoder) cidrs(n *yaml.Node) []netip.Prefix {
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "trunks.inbound.allow: want a list of CIDRs such as 203.0.113.0/24, got %s", yamlfile.Describe(n))
		return nil
	}
	var out []netip.Prefix
	for _, item := range n.Content {
		v, ok := d.Str(item, "trunks.inbound.allow")
		if !ok {
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			if ip, ierr := netip.ParseAddr(v); ierr == nil {
				p = netip.PrefixFrom(ip, ip.BitLen())
			} else {
				d.Errorf(yamlfile.Resolve(item), "trunks.inbound.allow: %q is not a CIDR; want e.g. 54.172.60.0/30 or 127.0.0.2/32", v)
				continue
			}
		}
		if p != p.Masked() {
			d.Errorf(yamlfile.Resolve(item), "trunks.inbound.allow: %s has host bits set; did you mean %s?", p, p.Masked())
			continue
		}
		out = append(out, p)
	}
	return out
}

func (d *decoder) destinations(n *yaml.Node) []string {
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "trunks.outbound.allowed_destinations: want a list of patterns (\"+1*\" prefix, \"~regexp\", exact), got %s", yamlfile.Describe(n))
		return nil
	}
	var out []string
	for _, item := range n.Content {
		v, ok := d.Str(item, "trunks.outbound.allowed_destinations")
		if !ok {
			continue
		}
		if _, err := sip.DestinationPattern(v); err != nil {
			d.Errorf(yamlfile.Resolve(item), "trunks.outbound.allowed_destinations: %v", err)
			continue
		}
		out = append(out, v)
	}
	return out
}

func (d *decoder) count(n *yaml.Node, what string) int {
	v, ok := d.Integer(n, what, "a count, 0 for no limit")
	if ok && v < 0 {
		d.Errorf(n, "%s: %d is negative; want a count, 0 for no limit", what, v)
		return 0
	}
	return v
}

func (d *decoder) rate(n *yaml.Node, what string) float64 {
	n = yamlfile.Resolve(n)
	tag := n.ShortTag()
	v, err := strconv.ParseFloat(n.Value, 64)
	if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || err != nil || v < 0 {
		d.Errorf(n, "%s: want a non-negative number of calls a second, 0 for no limit, got %s", what, yamlfile.Describe(n))
		return 0
	}
	return v
}

// SIPTrunks turns the trunks into the sip server's settings.
func SIPTrunks(ts []Trunk) (in []sip.InboundTrunk, out []sip.OutboundTrunk) {
	for _, t := range ts {
		if i := t.Inbound; i != nil {
			in = append(in, sip.InboundTrunk{Name: t.Name, Allow: i.Allow, User: i.AuthUser, Password: i.AuthPassword,
				Silent: i.UnknownSource == "silent", MaxCalls: i.MaxCalls, CallsPerSecond: i.CallsPerSecond})
		}
		if o := t.Outbound; o != nil {
			out = append(out, sip.OutboundTrunk{Name: t.Name, Host: o.Host, Port: o.Port, Transport: o.Transport,
				Auth: sip.Credentials{User: o.AuthUser, Password: o.AuthPassword}, CallerID: o.CallerID,
				Register: o.RegisterExpires, OptionsPing: o.OptionsPing, MaxCalls: o.MaxCalls,
				CallsPerSecond: o.CallsPerSecond, AllowedDestinations: o.AllowedDestinations,
				FailoverTimeout: o.FailoverTimeout})
		}
	}
	return in, out
}
