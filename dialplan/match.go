package dialplan

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// Match holds a route's conditions as written; every one given must hold.
type Match struct {
	To, From string           // exact, prefix* or ~regexp, compared after Normalize
	Trunks   []string         // the inbound trunk is one of these
	Sources  []netip.Prefix   // the signalling source is in one of these
	Headers  []HeaderMatch    // every header is present and matches
	Time     []*Window        // the call arrives within one of these
	compiled *compiledHeaders // nil when no headers
}

// HeaderMatch is one header condition: Pattern is exact, prefix* or ~regexp,
// on the value as sent (no number normalisation); Name is case-insensitive.
type HeaderMatch struct {
	Name, Pattern string
}

type compiledHeaders struct {
	names []string
	m     []*matcher
}

var matchKeys = []string{"to", "from", "trunk", "source", "headers", "time"}

// matchWant describes a match: mapping in messages.
const matchWant = "a mapping with keys " + "to, from, trunk, source, headers, time"

// matches reports whether every condition holds; to and from are c's, normalised.
func (r *Route) matches(c CallInfo, to, from string) bool {
	m := &r.Match
	if (r.to != nil && !r.to.matchRaw(to)) || (r.from != nil && !r.from.matchRaw(from)) {
		return false
	}
	if m.Trunks != nil && (c.Trunk == "" || !slices.Contains(m.Trunks, c.Trunk)) {
		return false
	}
	if m.Sources != nil && !inPrefixes(m.Sources, c.Source) {
		return false
	}
	if h := m.compiled; h != nil {
		for i, name := range h.names {
			v := ""
			if c.Header != nil {
				v = c.Header(name)
			}
			if v == "" || !h.m[i].matchRaw(v) {
				return false
			}
		}
	}
	if m.Time != nil {
		at := c.At
		if at.IsZero() {
			at = time.Now()
		}
		in := false
		for _, w := range m.Time {
			in = in || w.Contains(at)
		}
		if !in {
			return false
		}
	}
	return true
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// matchRaw compares s as given: header values, and to/from already normalised.
func (m *matcher) matchRaw(s string) bool {
	switch {
	case m.re != nil:
		return m.re.MatchString(s)
	case m.isPre:
		return strings.HasPrefix(s, m.prefix)
	default:
		return s == m.exact
	}
}

func (d *decoder) match(r *Route, n *yaml.Node, label string) bool {
	const none = "%s: match has no keys; want to:, from:, trunk:, source:, headers: or time: (use default: for a catch-all)"
	if yamlfile.IsNull(n) {
		d.Errorf(n, none, label)
		return false
	}
	fs, ok := d.Mapping(n, "match", matchWant, matchKeys)
	if !ok {
		return false
	}
	if len(yamlfile.Resolve(n).Content) == 0 {
		d.Errorf(n, none, label)
		return false
	}
	ok = true
	for _, f := range fs {
		var valid bool
		switch f.Name {
		case "to", "from":
			var pat string
			var m *matcher
			if pat, valid = d.Str(f.Value, "match."+f.Name); valid {
				m, valid = d.pattern(f.Value, "match."+f.Name, pat, true)
			}
			if f.Name == "to" {
				r.Match.To, r.to = pat, m
			} else {
				r.Match.From, r.from = pat, m
			}
		case "trunk":
			r.Match.Trunks, valid = d.trunks(f.Value)
		case "source":
			r.Match.Sources, valid = d.sources(f.Value)
		case "headers":
			valid = d.headers(&r.Match, f.Value)
		case "time":
			r.Match.Time, valid = d.windows(f.Value)
		}
		ok = ok && valid
	}
	return ok && len(fs) > 0
}

// pattern compiles "~regexp", "prefix*" or an exact value; number says
// whether values are compared after Normalize (to:, from:).
func (d *decoder) pattern(n *yaml.Node, what, pat string, number bool) (*matcher, bool) {
	if pat == "" {
		d.Errorf(n, "%s: empty; want an exact value, a prefix ending in *, or ~ and a regular expression", what)
		return nil, false
	}
	norm := func(s string) string { return s }
	if number {
		norm = Normalize
	}
	expr, isRE := strings.CutPrefix(pat, "~")
	if !isRE {
		if pre, isPre := strings.CutSuffix(pat, "*"); isPre {
			if pre == "" {
				d.Errorf(n, "%s: a lone * matches everything; leave the key out instead", what)
				return nil, false
			}
			return &matcher{prefix: norm(pre), isPre: true}, true
		}
		return &matcher{exact: norm(pat)}, true
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
		d.Errorf(n, "%s: bad regular expression %q: %s; want Go RE2 syntax after the leading ~", what, expr, msg)
		return nil, false
	}
	if number && strings.HasPrefix(expr, "^") {
		if lit, _ := re.LiteralPrefix(); strings.HasPrefix(lit, "+") || strings.HasPrefix(lit, "00") {
			d.Errorf(n, "%s: %q can never match a number: numbers are compared without + or 00 (\"+49 30 1234\" is 49301234); write ^%s",
				what, expr, strings.TrimLeft(strings.TrimPrefix(lit, "+"), "0"))
			return nil, false
		}
	}
	return &matcher{re: re}, true
}

// strings1 reads a string or a list of strings.
func (d *decoder) strings1(n *yaml.Node, what string) ([]*yaml.Node, bool) {
	n = yamlfile.Resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		return []*yaml.Node{n}, true
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			d.Errorf(n, "%s: empty list; leave the key out to match any", what)
			return nil, false
		}
		return n.Content, true
	}
	d.Errorf(n, "%s: want a string or a list of strings, got %s", what, yamlfile.Describe(n))
	return nil, false
}

func (d *decoder) trunks(n *yaml.Node) ([]string, bool) {
	items, ok := d.strings1(n, "match.trunk")
	var out []string
	for _, it := range items {
		name, valid := d.Str(it, "match.trunk")
		switch {
		case !valid:
			ok = false
		case name == "":
			d.Errorf(it, "match.trunk: empty; want a trunk name from the config")
			ok = false
		default:
			out = append(out, name)
		}
	}
	return out, ok
}

func (d *decoder) sources(n *yaml.Node) ([]netip.Prefix, bool) {
	items, ok := d.strings1(n, "match.source")
	var out []netip.Prefix
	for _, it := range items {
		s, valid := d.Str(it, "match.source")
		if !valid {
			ok = false
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				d.Errorf(it, "match.source: %q is not an address or CIDR; want e.g. 54.172.60.0/30 or 2001:db8::/32", s)
				ok = false
				continue
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Masked() != p {
			d.Errorf(it, "match.source: %s has host bits set; did you mean %s?", s, p.Masked())
			ok = false
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96) // calls are matched on the unmapped address
		}
		out = append(out, p)
	}
	return out, ok
}

// headerName: an RFC 3261 token.
var headerName = regexp.MustCompile("^[A-Za-z0-9.!%*_+`'~-]+$")

func (d *decoder) headers(m *Match, n *yaml.Node) bool {
	fs, ok := d.Mapping(n, "match.headers", `a mapping of header: value, such as {X-Twilio-AccountSid: AC123}`, nil)
	if !ok {
		return false
	}
	if len(fs) == 0 {
		d.Errorf(n, "match.headers: no headers; leave the key out to match any")
		return false
	}
	h := &compiledHeaders{}
	for _, f := range fs {
		what := "match.headers." + f.Name
		if !headerName.MatchString(f.Name) {
			d.Errorf(f.Key, "match.headers: %q is not a SIP header name", f.Name)
			ok = false
			continue
		}
		for _, prev := range h.names {
			if strings.EqualFold(prev, f.Name) {
				d.Errorf(f.Key, "match.headers: %s given twice (header names are case-insensitive)", f.Name)
				ok = false
			}
		}
		pat, valid := d.Str(f.Value, what)
		if !valid {
			ok = false
			continue
		}
		pm, valid := d.pattern(f.Value, what, pat, false)
		if !valid {
			ok = false
			continue
		}
		m.Headers = append(m.Headers, HeaderMatch{Name: f.Name, Pattern: pat})
		h.names = append(h.names, f.Name)
		h.m = append(h.m, pm)
	}
	if ok {
		m.compiled = h
	}
	return ok
}

// String is a route's conditions in one line, for `dialplan route`.
func (m *Match) String() string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+v) }
	if m.To != "" {
		add("to", m.To)
	}
	if m.From != "" {
		add("from", m.From)
	}
	if m.Trunks != nil {
		add("trunk", strings.Join(m.Trunks, ","))
	}
	for _, p := range m.Sources {
		add("source", p.String())
	}
	for _, h := range m.Headers {
		add("header", h.Name+":"+h.Pattern)
	}
	for _, w := range m.Time {
		add("time", w.String())
	}
	return strings.Join(parts, " ")
}
