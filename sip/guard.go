package sip

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

// scannerAgents are User-Agent fragments of SIP scanners and toll-fraud tools (lower case).
var scannerAgents = []string{
	"friendly-scanner", "sipvicious", "sipcli", "vaxsipuseragent", "sip-scan", "sipscan",
	"iwar", "sundayddr", "pplsip", "smap", "siparmyknife", "sipsscuser",
}

// errNoDial refuses every outgoing connection and DNS lookup of the server's user agent: it
// answers on the connection or address a request came from, never on a host the request names.
var errNoDial = errors.New("sip: server never dials hosts named in requests")

// guard runs in sipgo's read filter, before parsing: it drops scanners and sources over
// their rate, answers requests sipgo cannot parse, and pins UDP answers to the source.
type guard struct {
	s      *Server
	parser *sip.Parser

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

// bucket is a token bucket of messages per source address.
type bucket struct {
	tokens float64
	last   time.Time
}

func newGuard(s *Server) *guard {
	return &guard{s: s, parser: sip.NewParser(), buckets: map[netip.Addr]*bucket{}}
}

// filter never returns an error: sipgo closes the listener's read loop on one.
func (g *guard) filter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if len(bytes.Trim(data, "\r\n")) == 0 {
		return data, nil // keep-alive
	}
	src := addrPortOf(p.RemoteAddr)
	if !g.allow(src.Addr(), time.Now()) {
		g.s.refused("rate", 0)
		g.s.log.Debug("sip rate limit: dropped", "source", src)
		return nil, nil
	}
	udp := !strings.EqualFold(p.Transport, "tcp") && !strings.EqualFold(p.Transport, "tls")
	if g.s.cfg.DropScanners && isScanner(data) {
		g.s.refused("scanner", 0)
		g.s.log.Debug("sip scanner dropped", "source", src)
		return nil, nil
	}
	if !udp {
		return data, nil // a stream chunk is not a message; sipgo answers on this connection
	}
	if _, err := g.parser.ParseSIP(data); err != nil {
		g.answerUnparsable(p, data, err)
		return nil, nil
	}
	return withRport(data), nil
}

// allow spends one token of src's bucket.
func (g *guard) allow(src netip.Addr, now time.Time) bool {
	rate, burst := g.s.cfg.RatePerSource, float64(g.s.cfg.RateBurst)
	if rate <= 0 || !src.IsValid() {
		return true
	}
	if burst < 1 {
		burst = max(1, rate)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.swept) > time.Minute {
		// Forget full buckets so a spoofed-source flood cannot grow the map for ever.
		for a, b := range g.buckets {
			if now.Sub(b.last).Seconds()*rate >= burst {
				delete(g.buckets, a)
			}
		}
		g.swept = now
	}
	b, ok := g.buckets[src]
	if !ok {
		b = &bucket{tokens: burst, last: now}
		g.buckets[src] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// overCapacity is the 503 a new INVITE gets when max_calls are up.
func (s *Server) overCapacity(req *sip.Request) *rejection {
	if s.cfg.MaxCalls <= 0 || !req.IsInvite() || hasToTag(req) || s.dialogs.size() < s.cfg.MaxCalls {
		return nil
	}
	return &rejection{code: 503, reason: "Service Unavailable", warning: "too many calls",
		hdrs: []sip.Header{sip.NewHeader("Retry-After", "10")}}
}

func (t *dialogTable[T]) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// refuse answers a request that must not reach its handler; true when it did.
func (s *Server) refuse(req *sip.Request, tx sip.ServerTransaction) bool {
	r, why := validateRequest(req), "invalid"
	if r == nil {
		r, why = s.overCapacity(req), "max_calls"
	}
	if r == nil {
		return false
	}
	s.refused(why, r.code)
	s.log.Debug("sip request refused", "method", req.Method, "status", r.code, "why", r.warning, "source", req.Source())
	if !req.IsAck() {
		s.respond(req, tx, r.code, r.reason, r.warning, r.hdrs...)
	}
	return true
}

// noDialResolver fails every DNS lookup without sending a query.
func noDialResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errNoDial
	}}
}

// noDialTCP is a TCP transport that answers on accepted connections and opens none.
func noDialTCP() *sip.TransportTCP {
	return &sip.TransportTCP{DialerCreate: func(laddr net.Addr) net.Dialer {
		return net.Dialer{LocalAddr: laddr, Timeout: time.Second,
			ControlContext: func(context.Context, string, string, syscall.RawConn) error { return errNoDial }}
	}}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// rawHeader is one logical header line of an unparsed message.
type rawHeader struct {
	name       string // lower case, compact forms expanded
	value      string // folded lines joined by a space
	valueStart int    // offsets of the value's first line in the message
	valueEnd   int    // end of the logical value (before its CRLF)
}

var compactNames = map[string]string{
	"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
	"c": "content-type", "k": "supported", "e": "content-encoding", "s": "subject",
}

// lineEnd finds the end of the line starting at i (before its CRLF or LF) and the next line's start.
func lineEnd(data []byte, i int) (end, next int) {
	j := bytes.IndexByte(data[i:], '\n')
	if j < 0 {
		return len(data), len(data)
	}
	end = i + j
	next = end + 1
	if end > i && data[end-1] == '\r' {
		end--
	}
	return end, next
}

// rawHeaders splits a message into its start line and header lines without judging them.
func rawHeaders(data []byte) (start string, hs []rawHeader) {
	end, i := lineEnd(data, 0)
	start = string(data[:end])
	for i < len(data) {
		end, next := lineEnd(data, i)
		if end == i {
			break // the empty line before the body
		}
		line := data[i:end]
		colon := bytes.IndexByte(line, ':')
		h := rawHeader{valueEnd: end}
		var value strings.Builder
		if colon >= 0 {
			h.name = strings.ToLower(strings.TrimSpace(string(line[:colon])))
			if full, ok := compactNames[h.name]; ok {
				h.name = full
			}
			h.valueStart = i + colon + 1
			value.Write(line[colon+1:])
		}
		for next < len(data) && (data[next] == ' ' || data[next] == '\t') {
			e, n := lineEnd(data, next)
			value.WriteByte(' ')
			value.Write(bytes.TrimLeft(data[next:e], " \t"))
			h.valueEnd, next = e, n
		}
		h.value = strings.TrimSpace(value.String())
		if colon >= 0 {
			hs = append(hs, h)
		}
		i = next
	}
	return start, hs
}

// isScanner looks for a scanner's User-Agent without parsing the message or
// allocating: every datagram passes here.
func isScanner(data []byte) bool {
	_, i := lineEnd(data, 0)
	for i < len(data) {
		end, next := lineEnd(data, i)
		if end == i {
			return false // the empty line before the body
		}
		value := data[i:end]
		colon := bytes.IndexByte(value, ':')
		isUA := colon >= 0 && bytes.EqualFold(bytes.TrimSpace(value[:colon]), []byte("user-agent"))
		for next < len(data) && (data[next] == ' ' || data[next] == '\t') {
			if isUA {
				return scannerAgent(rawUserAgent(data[i:])) // folded: rare, so joined the slow way
			}
			_, next = lineEnd(data, next)
		}
		if isUA && scannerAgent(value[colon+1:]) {
			return true
		}
		i = next
	}
	return false
}

// rawUserAgent is the folded User-Agent header at the start of data, its lines joined.
func rawUserAgent(data []byte) []byte {
	_, hs := rawHeaders(append([]byte("X\r\n"), data...))
	if len(hs) == 0 {
		return nil
	}
	return []byte(hs[0].value)
}

// scannerAgent reports whether a User-Agent value names a scanner, in any case.
func scannerAgent(ua []byte) bool {
	for _, s := range scannerAgents {
		if containsFold(ua, s) {
			return true
		}
	}
	return false
}

// containsFold is strings.Contains with ASCII case folding; sub is lower case.
func containsFold(b []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if bytes.EqualFold(b[i:i+len(sub)], []byte(sub)) {
			return true
		}
	}
	return false
}

// withRport adds rport to the top Via of a request, so sipgo answers to the source address
// and port (RFC 3581) rather than to a port, or host, the Via names.
func withRport(data []byte) []byte {
	if bytes.HasPrefix(data, []byte("SIP/")) {
		return data // a response
	}
	start, end, ok := topVia(data)
	if !ok {
		return data
	}
	// The top Via is the first comma-separated value; find its end in the raw bytes.
	at := end
	quoted := false
	for k := start; k < end; k++ {
		switch data[k] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				at = k
				k = end
			}
		}
	}
	for at > start && (data[at-1] == ' ' || data[at-1] == '\t' || data[at-1] == '\r' || data[at-1] == '\n') {
		at--
	}
	params := data[start:at]
	for i := bytes.IndexByte(params, ';'); i >= 0; {
		params = params[i+1:]
		i = bytes.IndexByte(params, ';')
		p := params
		if i >= 0 {
			p = params[:i]
		}
		if j := bytes.IndexByte(p, '='); j >= 0 {
			p = p[:j]
		}
		if bytes.EqualFold(bytes.TrimSpace(p), []byte("rport")) {
			return data
		}
	}
	out := make([]byte, 0, len(data)+6)
	out = append(out, data[:at]...)
	out = append(out, ";rport"...)
	return append(out, data[at:]...)
}

// topVia finds the value of a request's first Via header, from after its
// colon to the end of its logical line, without allocating (every datagram passes here).
func topVia(data []byte) (start, end int, ok bool) {
	_, i := lineEnd(data, 0)
	for i < len(data) {
		e, next := lineEnd(data, i)
		if e == i {
			return 0, 0, false // the empty line before the body
		}
		line := data[i:e]
		for next < len(data) && (data[next] == ' ' || data[next] == '\t') {
			e, next = lineEnd(data, next) // a folded continuation
		}
		if colon := bytes.IndexByte(line, ':'); colon >= 0 {
			if name := bytes.TrimSpace(line[:colon]); bytes.EqualFold(name, []byte("via")) || bytes.EqualFold(name, []byte("v")) {
				return i + colon + 1, e, true
			}
		}
		i = next
	}
	return 0, 0, false
}

// answerUnparsable sends the 400 (or 505, 416) a server owes a request it could not parse,
// when the request carries enough to address an answer; responses and the rest are dropped.
func (g *guard) answerUnparsable(p sip.TransportReadProps, data []byte, perr error) {
	res := rawAnswer(data, perr, g.s.cfg.UserAgent)
	if res == nil {
		g.s.refused("malformed", 0)
		g.s.log.Debug("sip unparsable message dropped", "source", p.RemoteAddr, "error", perr)
		return
	}
	g.s.refused("malformed", rawStatus(res))
	for _, c := range g.s.udp {
		if c.LocalAddr().String() == p.LocalAddr.String() {
			if _, err := c.WriteTo(res, p.RemoteAddr); err != nil {
				g.s.log.Debug("sip 400 to unparsable request failed", "error", err)
			}
			return
		}
	}
}

// rawAnswer builds the response to an unparsable request, or nil if it cannot be answered.
func rawAnswer(data []byte, perr error, userAgent string) []byte {
	start, hs := rawHeaders(data)
	f := strings.Fields(start)
	if len(f) < 3 || strings.HasPrefix(f[0], "SIP/") || !isToken(f[0]) || f[0] == "ACK" ||
		!strings.HasPrefix(strings.ToUpper(f[len(f)-1]), "SIP/") {
		return nil
	}
	have := map[string]bool{}
	for _, h := range hs {
		have[h.name] = true
	}
	for _, n := range []string{"via", "from", "to", "call-id", "cseq"} {
		if !have[n] {
			return nil
		}
	}
	code, reason := 400, "Bad Request"
	switch {
	case !strings.EqualFold(f[len(f)-1], "SIP/2.0"):
		code, reason = 505, "Version Not Supported"
	case len(f) == 3 && start == strings.Join(f, " ") && !strings.HasPrefix(f[1], "<") && !knownScheme(schemeOf(f[1])) && schemeOf(f[1]) != "":
		code, reason = 416, "Unsupported URI Scheme"
	}
	var b bytes.Buffer
	b.WriteString("SIP/2.0 " + strconv.Itoa(code) + " " + reason + "\r\n")
	for _, h := range hs {
		switch h.name {
		case "via":
			b.WriteString("Via: " + h.value + "\r\n")
		case "from":
			b.WriteString("From: " + h.value + "\r\n")
		case "to":
			v := h.value
			if !strings.Contains(strings.ToLower(v), "tag=") {
				v += ";tag=" + sip.GenerateTagN(10)
			}
			b.WriteString("To: " + v + "\r\n")
		case "call-id":
			b.WriteString("Call-ID: " + h.value + "\r\n")
		case "cseq":
			b.WriteString("CSeq: " + h.value + "\r\n")
		}
	}
	b.WriteString("Server: " + userAgent + "\r\n")
	b.WriteString("Warning: 399 switchboard " + strconv.Quote("malformed request: "+firstLine(perr.Error())) + "\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

// rawStatus reads the status code back from a response rawAnswer built.
func rawStatus(res []byte) int {
	code, _ := strconv.Atoi(string(res[len("SIP/2.0 ") : len("SIP/2.0 ")+3]))
	return code
}

func schemeOf(uri string) string {
	s, _, ok := strings.Cut(uri, ":")
	if !ok || s == "" {
		return ""
	}
	for i, r := range s {
		alpha := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !alpha && (i == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return ""
		}
	}
	return s
}

// isToken is RFC 3261's token: what a method name is made of.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
