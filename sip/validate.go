package sip

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// rejection is the answer a request gets before any handler sees it.
type rejection struct {
	code    int
	reason  string
	warning string
	hdrs    []sip.Header
}

// supportedExtensions are the option tags we implement; a Require naming another gets 420.
var supportedExtensions = map[string]bool{}

// singleHeaders may appear once only (RFC 3261 7.3.1: they are not comma-separated lists).
var singleHeaders = [...]string{"From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type"}

// maxCSeq is 2**31-1: RFC 3261 8.1.1.5 keeps sequence numbers below 2**31.
const maxCSeq = 1<<31 - 1

func badRequest(warning string) *rejection {
	return &rejection{code: 400, reason: "Bad Request", warning: warning}
}

// validateRequest checks what sipgo parses but a server cannot act on (RFC 3261 8.2,
// RFC 4475). It never panics on missing headers; nil means the request may proceed.
func validateRequest(req *sip.Request) *rejection {
	if req == nil {
		return badRequest("empty request")
	}
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return &rejection{code: 505, reason: "Version Not Supported", warning: "only SIP/2.0 is supported"}
	}
	switch {
	case req.Via() == nil:
		return badRequest("missing Via")
	case req.From() == nil:
		return badRequest("missing or invalid From")
	case req.To() == nil:
		return badRequest("missing or invalid To")
	case req.CallID() == nil || strings.TrimSpace(req.CallID().Value()) == "":
		return badRequest("missing Call-ID")
	case req.CSeq() == nil:
		return badRequest("missing or invalid CSeq")
	}
	if name := repeatedSingle(req); name != "" {
		return badRequest("more than one " + name)
	}
	cseq := req.CSeq()
	if !strings.EqualFold(string(cseq.MethodName), string(req.Method)) {
		return badRequest("CSeq method " + string(cseq.MethodName) + " does not match " + string(req.Method))
	}
	if cseq.SeqNo > maxCSeq {
		return badRequest("CSeq number above 2**31-1")
	}
	if from := req.From(); !knownScheme(from.Address.Scheme) {
		return badRequest("From URI scheme " + strconv.Quote(from.Address.Scheme) + " not allowed")
	}
	if to := req.To(); !knownScheme(to.Address.Scheme) {
		return badRequest("To URI scheme " + strconv.Quote(to.Address.Scheme) + " not allowed")
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() > 255 {
		return badRequest("Max-Forwards above 255")
	}
	if !knownScheme(req.Recipient.Scheme) {
		return &rejection{code: 416, reason: "Unsupported URI Scheme", warning: "Request-URI scheme " + strconv.Quote(req.Recipient.Scheme)}
	}
	if req.Recipient.Headers != nil && req.Recipient.Headers.Length() > 0 {
		// RFC 3261 19.1.5: headers in a Request-URI are not allowed.
		return badRequest("Request-URI carries headers")
	}
	if cl := req.ContentLength(); cl != nil && int(*cl) != len(req.Body()) {
		return badRequest("Content-Length does not match the body")
	}
	if req.IsAck() || req.IsCancel() {
		return nil // RFC 3261 8.2.2.3: Require does not apply to ACK and CANCEL
	}
	if tags := unsupportedTags(req); len(tags) > 0 {
		return &rejection{code: 420, reason: "Bad Extension", warning: "unsupported extension",
			hdrs: []sip.Header{sip.NewHeader("Unsupported", strings.Join(tags, ", "))}}
	}
	if req.IsInvite() && !hasToTag(req) {
		if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
			// A new call may be extended to another leg: refuse it as a proxy would (RFC 3261 16.3).
			return &rejection{code: 483, reason: "Too Many Hops", warning: "Max-Forwards is 0"}
		}
		if !acceptsSDP(req) {
			return &rejection{code: 406, reason: "Not Acceptable", warning: "we answer with application/sdp only",
				hdrs: []sip.Header{sip.NewHeader("Accept", "application/sdp")}}
		}
	}
	return nil
}

// repeatedSingle names the first of singleHeaders that req has more than once.
// One pass over the headers, with no allocation: every request passes here.
func repeatedSingle(req *sip.Request) string {
	var seen [7]int
	for _, h := range req.Headers() {
		for i, name := range singleHeaders {
			if strings.EqualFold(h.Name(), name) {
				seen[i]++
			}
		}
	}
	for i, n := range seen {
		if n > 1 {
			return singleHeaders[i]
		}
	}
	return ""
}

// knownScheme: URI schemes a SIP gateway takes (RFC 3261 sip/sips, RFC 3966 tel).
func knownScheme(s string) bool {
	return strings.EqualFold(s, "sip") || strings.EqualFold(s, "sips") || strings.EqualFold(s, "tel")
}

// unsupportedTags lists Require option tags we do not implement, in request order.
func unsupportedTags(req *sip.Request) []string {
	var out []string
	for _, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), "Require") {
			continue
		}
		for _, tag := range strings.Split(h.Value(), ",") {
			tag = strings.TrimSpace(tag)
			if tag != "" && !supportedExtensions[strings.ToLower(tag)] {
				out = append(out, tag)
			}
		}
	}
	return out
}

// acceptsSDP is false when an Accept header leaves out every type our answer could have.
func acceptsSDP(req *sip.Request) bool {
	listed := false
	for _, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), "Accept") {
			continue
		}
		listed = true
		for _, t := range strings.Split(h.Value(), ",") {
			mt, _, _ := strings.Cut(t, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "application/sdp", "application/*", "*/*", "":
				return true
			}
		}
	}
	return !listed
}
