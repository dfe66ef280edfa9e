package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// decoder adds the config schema to the generic YAML decoder. Strings go
// through StrOrEmpty: a null value ("advertise_ip:") is "".
type decoder struct {
	yamlfile.Decoder
	dir string // the config file's directory, for relative paths (tls.go)
}

func (d *decoder) config(c *Config, n *yaml.Node) {
	if n == nil {
		return // empty file: all defaults
	}
	keys := []string{"sip", "rtp", "http", "dialplan", "drain_timeout", "log", "recordings", "cdr", "rooms", "api", "trunks"}
	fs, ok := d.Mapping(n, "config", "a mapping with keys "+strings.Join(keys, ", "), keys)
	if !ok {
		return
	}
	for _, f := range fs {
		switch f.Name {
		case "sip":
			d.sip(&c.SIP, f.Value)
		case "rtp":
			d.rtp(&c.RTP, f.Value)
		case "http":
			d.http(&c.HTTP, f.Value)
		case "dialplan":
			if v, ok := d.StrOrEmpty(f.Value, "dialplan"); ok {
				if v == "" {
					d.Errorf(f.Value, "dialplan: empty; want a path to the dialplan YAML, relative to this file's directory")
				}
				c.Dialplan = v
			}
		case "drain_timeout":
			if v, ok := d.duration(f.Value, "drain_timeout", "0 hangs up at once"); ok {
				c.DrainTimeout = v
			}
		case "log":
			d.log(&c.Log, f.Value)
		case "recordings":
			d.recordings(&c.Recordings, f.Value)
		case "api":
			d.api(&c.API, f.Value)
		case "cdr":
			d.cdr(&c.CDR, f.Value)
		case "rooms":
			d.rooms(&c.Rooms, f.Value) // rooms.go
		case "trunks":
			c.Trunks = d.trunks(f.Value) // trunks.go
		}
	}
}

// section returns the keys of a nested mapping; null ("rtp:" with everything
// commented out) is an empty section.
func (d *decoder) section(n *yaml.Node, what string, keys []string) yamlfile.Fields {
	if yamlfile.IsNull(n) {
		return nil
	}
	fs, _ := d.Mapping(n, what, "a mapping with keys "+strings.Join(keys, ", "), keys)
	return fs
}

func (d *decoder) sip(s *SIP, n *yaml.Node) {
	var listenNodes []*yaml.Node // addr value per listen entry, for the advertise_ip checks
	advertiseSet := false
	for _, f := range d.section(n, "sip", []string{"listen", "advertise_ip", "codecs", "user_agent", "max_calls", "rate_limit", "rate_burst", "drop_scanners", "srtp"}) {
		switch f.Name {
		case "listen":
			s.Listen, listenNodes = d.listen(f.Value)
		case "advertise_ip":
			v, ok := d.StrOrEmpty(f.Value, "sip.advertise_ip")
			if !ok || v == "" {
				advertiseSet = !ok // a wrong type is reported; don't also blame the listen IPs
				continue
			}
			advertiseSet = true
			ip, err := netip.ParseAddr(v)
			switch {
			case err != nil:
				d.Errorf(f.Value, "sip.advertise_ip: %q is not an IP address; want the IP callers reach this gateway on, or \"\" for the listen IP", v)
			case ip.IsUnspecified():
				d.Errorf(f.Value, "sip.advertise_ip: %s is a wildcard; want the IP callers reach this gateway on", v)
			default:
				s.AdvertiseIP = ip.WithZone("")
			}
		case "codecs":
			s.Codecs = d.codecs(f.Value)
		case "srtp":
			if v, ok := d.oneOf(f.Value, "sip.srtp", srtpModes); ok {
				s.SRTP = v
			}
		case "user_agent":
			if v, ok := d.StrOrEmpty(f.Value, "sip.user_agent"); ok {
				s.UserAgent = v
			}
		case "max_calls", "rate_limit", "rate_burst":
			v, ok := d.Integer(f.Value, "sip."+f.Name, "a count, 0 for no limit")
			if ok && v < 0 {
				d.Errorf(f.Value, "sip.%s: %d is negative; want a count, 0 for no limit", f.Name, v)
			}
			switch f.Name {
			case "max_calls":
				s.MaxCalls = v
			case "rate_limit":
				s.RateLimit = v
			default:
				s.RateBurst = v
			}
		case "drop_scanners":
			if b, err := strconv.ParseBool(f.Value.Value); f.Value.Kind == yaml.ScalarNode && f.Value.Tag == "!!bool" && err == nil {
				s.DropScanners = b
			} else {
				d.Errorf(f.Value, "sip.drop_scanners: want true or false, got %s", yamlfile.Describe(f.Value))
			}
		}
	}
	if advertiseSet || listenNodes == nil {
		return // advertise_ip given, or the default listen (127.0.0.1) stands
	}
	// Derive advertise_ip from the listen addresses: they must agree on one usable IP.
	s.AdvertiseIP = netip.Addr{}
	for i, l := range s.Listen {
		ip := l.Addr.Addr()
		switch {
		case ip.IsUnspecified():
			d.Errorf(listenNodes[i], "sip.listen: %s listens on every interface, so it has no IP to advertise; set sip.advertise_ip to the IP callers reach this gateway on", l.Addr)
			return
		case !s.AdvertiseIP.IsValid():
			s.AdvertiseIP = ip.WithZone("")
		case s.AdvertiseIP != ip.WithZone(""):
			d.Errorf(listenNodes[i], "sip.listen: %s differs from the first listen IP %s; set sip.advertise_ip to say which one to put in SDP and Contact", ip, s.AdvertiseIP)
			return
		}
	}
}

// listen returns the parsed entries and, for each, the node of its addr.
func (d *decoder) listen(n *yaml.Node) ([]Listen, []*yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "sip.listen: want a list of {transport: %s, addr: host:port}, got %s", strings.Join(transports, "|"), yamlfile.Describe(n))
		return nil, nil
	}
	if len(n.Content) == 0 {
		d.Errorf(n, "sip.listen: empty; want at least one {transport: %s, addr: host:port}", strings.Join(transports, "|"))
		return nil, nil
	}
	var (
		out   []Listen
		nodes []*yaml.Node
		seen  = map[Listen]int{} // → line
	)
	for _, item := range n.Content {
		item = yamlfile.Resolve(item)
		fs, ok := d.Mapping(item, "sip.listen", "a mapping {transport: udp|tcp|tls, addr: host:port}", []string{"transport", "addr", "cert", "key", "srtp"})
		if !ok {
			continue
		}
		var l Listen
		valid := true
		tf, has := fs.Get("transport")
		if !has {
			d.Errorf(item, "sip.listen: entry is missing transport; allowed: %s", strings.Join(transports, ", "))
			valid = false
		} else if l.Transport, ok = d.oneOf(tf.Value, "sip.listen.transport", transports); !ok {
			valid = false
		}
		af, has := fs.Get("addr")
		if !has {
			d.Errorf(item, "sip.listen: entry is missing addr; want IP:port, e.g. 127.0.0.1:5060")
			valid = false
		} else if v, ok := d.StrOrEmpty(af.Value, "sip.listen.addr"); !ok {
			valid = false
		} else if ap, err := netip.ParseAddrPort(v); err != nil {
			d.Errorf(af.Value, "sip.listen.addr: %q is not IP:port; want e.g. 127.0.0.1:5060, [::1]:5060 or 0.0.0.0:5060", v)
			valid = false
		} else {
			l.Addr = ap
		}
		if valid && !d.listenSecurity(&l, fs, item) {
			valid = false
		}
		if !valid {
			continue
		}
		if line, dup := seen[l]; dup {
			d.Errorf(af.Value, "sip.listen: %s %s is listed twice (first at line %d)", l.Transport, l.Addr, line)
			continue
		}
		seen[l] = af.Value.Line
		out = append(out, l)
		nodes = append(nodes, af.Value)
	}
	if len(out) != len(n.Content) {
		return nil, nil // errors reported; skip the advertise_ip derivation
	}
	return out, nodes
}

func (d *decoder) codecs(n *yaml.Node) []string {
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "sip.codecs: want a list in preference order from %s, got %s", strings.Join(codecs, ", "), yamlfile.Describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		d.Errorf(n, "sip.codecs: empty; want at least one of %s", strings.Join(codecs, ", "))
		return nil
	}
	var out []string
	for _, item := range n.Content {
		v, ok := d.oneOf(item, "sip.codecs", codecs)
		if !ok {
			continue
		}
		if slices.Contains(out, v) {
			d.Errorf(yamlfile.Resolve(item), "sip.codecs: %s is listed twice", v)
			continue
		}
		out = append(out, v)
	}
	return out
}

func (d *decoder) rtp(r *RTP, n *yaml.Node) {
	var minNode, maxNode *yaml.Node
	portsOK := true
	for _, f := range d.section(n, "rtp", []string{"ip", "port_min", "port_max", "timeout"}) {
		switch f.Name {
		case "ip":
			if v, ok := d.StrOrEmpty(f.Value, "rtp.ip"); ok {
				ip, err := netip.ParseAddr(v)
				if err != nil {
					d.Errorf(f.Value, "rtp.ip: %q is not an IP address; want the address RTP sockets bind to, e.g. 127.0.0.1 or 0.0.0.0", v)
					continue
				}
				r.IP = ip
			}
		case "port_min", "port_max":
			p, ok := d.Integer(f.Value, "rtp."+f.Name, fmt.Sprintf("a UDP port %d–%d", rtpPortLow, rtpPortHigh))
			if !ok {
				portsOK = false
				continue
			}
			if p < rtpPortLow || p > rtpPortHigh {
				d.Errorf(f.Value, "rtp.%s: %d is out of range; want %d–%d", f.Name, p, rtpPortLow, rtpPortHigh)
				portsOK = false
				continue
			}
			if f.Name == "port_min" {
				if p%2 != 0 {
					d.Errorf(f.Value, "rtp.port_min: %d is odd; want an even port (RTP even, RTCP the odd one above)", p)
					portsOK = false
					continue
				}
				r.PortMin, minNode = p, f.Value
			} else {
				r.PortMax, maxNode = p, f.Value
			}
		case "timeout":
			if v, ok := d.duration(f.Value, "rtp.timeout", "0 disables"); ok {
				r.Timeout = v
			}
		}
	}
	if portsOK && (minNode != nil || maxNode != nil) && r.PortMin >= r.PortMax {
		at := minNode
		if at == nil {
			at = maxNode
		}
		d.Errorf(at, "rtp: port_min %d is not below port_max %d; want port_min < port_max", r.PortMin, r.PortMax)
	}
}

func (d *decoder) http(h *HTTP, n *yaml.Node) {
	for _, f := range d.section(n, "http", []string{"listen"}) {
		v, ok := d.StrOrEmpty(f.Value, "http.listen")
		if !ok {
			continue
		}
		if v != "" {
			_, port, err := net.SplitHostPort(v)
			if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil {
				d.Errorf(f.Value, "http.listen: %q is not host:port; want e.g. 127.0.0.1:8080, or \"\" to disable", v)
				continue
			}
		}
		h.Listen = v
	}
}

func (d *decoder) log(l *Log, n *yaml.Node) {
	for _, f := range d.section(n, "log", []string{"level", "format"}) {
		switch f.Name {
		case "level":
			v, ok := d.oneOf(f.Value, "log.level", logLevels)
			if !ok {
				continue
			}
			var lvl slog.Level
			_ = lvl.UnmarshalText([]byte(v)) // v is one of logLevels
			l.Level = lvl
		case "format":
			if v, ok := d.oneOf(f.Value, "log.format", logFormats); ok {
				l.Format = v
			}
		}
	}
}

// oneOf returns a string that must be one of allowed.
func (d *decoder) oneOf(n *yaml.Node, what string, allowed []string) (string, bool) {
	v, ok := d.StrOrEmpty(n, what)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, v) {
		d.Errorf(yamlfile.Resolve(n), "%s: %q is not allowed; allowed: %s", what, v, strings.Join(allowed, ", "))
		return "", false
	}
	return v, true
}

// duration returns a non-negative Go duration; a bare 0 is accepted.
func (d *decoder) duration(n *yaml.Node, what, zero string) (time.Duration, bool) {
	v, ok := d.StrOrEmpty(n, what)
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur < 0 {
		d.Errorf(yamlfile.Resolve(n), "%s: %q is not a duration; want a Go duration like 30s or 1m30s (%s)", what, v, zero)
		return 0, false
	}
	return dur, true
}

func (d *decoder) recordings(r *Recordings, n *yaml.Node) {
	for _, f := range d.section(n, "recordings", []string{"dir"}) {
		if v, ok := d.StrOrEmpty(f.Value, "recordings.dir"); ok {
			if v == "" {
				d.Errorf(yamlfile.Resolve(f.Value), "recordings.dir: empty; want a directory for call recordings, relative to this file's directory")
				continue
			}
			r.Dir = v
		}
	}
}
