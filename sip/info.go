package sip

import (
	"bufio"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// DTMF by SIP INFO: the de-facto application/dtmf-relay body ("Signal=5\r\n
// Duration=160") and the bare application/dtmf one ("5"), as carriers and PBXs
// send them when RFC 4733 is not negotiated or not trusted.

const (
	infoDTMFRelay = "application/dtmf-relay"
	infoDTMF      = "application/dtmf"
	infoDigits    = 32 // digits buffered for the handler
)

var errInfoDigit = errors.New("no DTMF digit in INFO body")

// dtmfInfo is an InboundCall's channel of INFO digits, made on first use so
// the zero value serves.
type dtmfInfo struct {
	once sync.Once
	ch   chan rune
}

func (d *dtmfInfo) get() chan rune {
	d.once.Do(func() { d.ch = make(chan rune, infoDigits) })
	return d.ch
}

// DTMF delivers the digits (0-9 * # A-D) the caller sends in SIP INFO requests,
// in order. A handler that does not keep up loses digits (logged) rather than
// delaying the answers to INFO.
func (c *InboundCall) DTMF() <-chan rune { return c.dtmf.get() }

// info answers an in-dialog INFO and hands its digit, if any, to DTMF. An empty
// INFO is a keep-alive; a body we do not know is 415 (RFC 6086 4.2.2).
func (c *InboundCall) info(req *sip.Request, tx sip.ServerTransaction) {
	ct := mediaType(headerValue(req, "Content-Type"))
	c.logger().Debug("sip INFO", "content_type", ct)
	body := req.Body()
	if len(body) == 0 {
		c.srv.respond(req, tx, 200, "OK", "")
		return
	}
	var d rune
	var err error
	switch ct {
	case infoDTMFRelay:
		d, err = parseDTMFRelay(string(body))
	case infoDTMF:
		d, err = parseDTMFDigit(string(body))
	default:
		c.srv.respond(req, tx, 415, "Unsupported Media Type", "",
			sip.NewHeader("Accept", infoDTMFRelay+", "+infoDTMF))
		return
	}
	if err != nil {
		c.srv.respond(req, tx, 400, "Bad Request", err.Error())
		return
	}
	c.srv.respond(req, tx, 200, "OK", "")
	select {
	case c.dtmf.get() <- d:
	default:
		c.logger().Warn("INFO dtmf queue full, digit dropped", "digit", string(d))
	}
}

// mediaType is a Content-Type without parameters, lower case.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// parseDTMFRelay reads the Signal line of an application/dtmf-relay body;
// Duration and other lines are ignored (the event is what matters to a call).
func parseDTMFRelay(body string) (rune, error) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "signal") {
			return parseDTMFDigit(v)
		}
	}
	return 0, errInfoDigit
}

// parseDTMFDigit reads one digit: the character itself, or its RFC 4733 event
// code (10 for *, 11 for #, 12-15 for A-D), which some senders use.
func parseDTMFDigit(s string) (rune, error) {
	s = strings.TrimSpace(s)
	if len(s) == 1 {
		r := rune(strings.ToUpper(s)[0])
		if strings.ContainsRune("0123456789*#ABCD", r) {
			return r, nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 10 && n <= 15 {
		return rune("*#ABCD"[n-10]), nil
	}
	return 0, errInfoDigit
}
