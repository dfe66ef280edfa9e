package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// uac is a lean SIP user agent client for many calls over one UDP socket: it
// writes its requests itself and parses what comes back with sipgo's parser.
// Transactions are only what a load run needs: INVITE (retransmitted on T1,
// ACK for any final answer), BYE (retransmitted), and 200 for the gateway's BYE.
type uac struct {
	conn   *net.UDPConn
	local  netip.AddrPort
	remote *net.UDPAddr
	mu     sync.Mutex
	calls  map[string]chan *sip.Response // Call-ID → responses
	byes   map[string]func()             // Call-ID → the gateway hung up
}

func newUAC(target string) (*uac, error) {
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(4 << 20)
	u := &uac{conn: conn, local: conn.LocalAddr().(*net.UDPAddr).AddrPort(), remote: raddr,
		calls: map[string]chan *sip.Response{}, byes: map[string]func(){}}
	go u.read()
	return u, nil
}

func (u *uac) close() { u.conn.Close() }

func (u *uac) read() {
	buf := make([]byte, 65535)
	for {
		n, from, err := u.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		switch m := msg.(type) {
		case *sip.Response:
			id := m.CallID().Value()
			u.mu.Lock()
			ch := u.calls[id]
			u.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				default: // a retransmission nobody waits for
				}
			}
		case *sip.Request:
			u.answer(m, from)
		}
	}
}

// answer replies 200 to the gateway's BYE (and OPTIONS), 481 to anything else.
func (u *uac) answer(req *sip.Request, from *net.UDPAddr) {
	code, reason := 200, "OK"
	switch req.Method {
	case sip.ACK:
		return
	case sip.BYE:
		u.mu.Lock()
		f := u.byes[req.CallID().Value()]
		u.mu.Unlock()
		if f != nil {
			f()
		} else {
			code, reason = 481, "Call/Transaction Does Not Exist"
		}
	case sip.OPTIONS:
	default:
		code, reason = 481, "Call/Transaction Does Not Exist"
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	_, _ = u.conn.WriteToUDP([]byte(res.String()), from)
}

// sipCall is one dialog placed by the uac.
type sipCall struct {
	u                *uac
	callID, fromTag  string
	toHeader, reqURI string
	cseq             int
	responses        chan *sip.Response
	remoteRTP        netip.AddrPort
	setup            time.Duration // INVITE sent to 200 OK received
	contact          string
}

var errRejected = errors.New("call rejected")

// invite places a call to user@gateway offering PCMU on rtpPort, waits for the
// answer, ACKs it and returns the gateway's RTP address.
func (u *uac) invite(ctx context.Context, user string, rtpPort int, onBye func()) (*sipCall, error) {
	c := &sipCall{u: u, callID: fmt.Sprintf("load-%016x@127.0.0.1", rand.Uint64()),
		fromTag: fmt.Sprintf("%08x", rand.Uint32()), cseq: 1, responses: make(chan *sip.Response, 8)}
	c.reqURI = fmt.Sprintf("sip:%s@%s", user, u.remote)
	c.toHeader = fmt.Sprintf("<%s>", c.reqURI)
	c.contact = fmt.Sprintf("<sip:load@%s>", u.local)
	u.mu.Lock()
	u.calls[c.callID] = c.responses
	u.byes[c.callID] = onBye
	u.mu.Unlock()

	sdp := fmt.Sprintf("v=0\r\no=- %d 1 IN IP4 127.0.0.1\r\ns=load\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n", rand.Uint32(), rtpPort)
	branch := "z9hG4bK" + strconv.FormatUint(rand.Uint64(), 36)
	inv := c.request("INVITE", branch, c.toHeader, 1, "Content-Type: application/sdp\r\n", sdp)
	start := time.Now()
	res, err := c.transact(ctx, inv, func(r *sip.Response) bool { return r.CSeq().MethodName == sip.INVITE })
	if err != nil {
		c.forget()
		return nil, err
	}
	c.setup = time.Since(start)
	to := res.To().Value()
	if res.StatusCode >= 300 {
		// A non-2xx final answer is ACKed within its transaction (same branch).
		_, _ = u.conn.WriteToUDP([]byte(c.request("ACK", branch, to, 1, "", "")), u.remote)
		c.forget()
		return nil, fmt.Errorf("%w: %d %s", errRejected, res.StatusCode, res.Reason)
	}
	c.toHeader = to
	if ct := res.Contact(); ct != nil {
		c.reqURI = ct.Address.String()
	}
	c.ack()
	c.remoteRTP, err = rtpFromSDP(string(res.Body()))
	if err != nil {
		c.bye(ctx)
		return nil, err
	}
	return c, nil
}

func (c *sipCall) ack() {
	ack := c.request("ACK", "z9hG4bK"+strconv.FormatUint(rand.Uint64(), 36), c.toHeader, 1, "", "")
	_, _ = c.u.conn.WriteToUDP([]byte(ack), c.u.remote)
}

// bye ends the dialog and waits (bounded) for the gateway's 200.
func (c *sipCall) bye(ctx context.Context) error {
	defer c.forget()
	c.cseq++
	req := c.request("BYE", "z9hG4bK"+strconv.FormatUint(rand.Uint64(), 36), c.toHeader, c.cseq, "", "")
	_, err := c.transact(ctx, req, func(r *sip.Response) bool {
		if r.CSeq().MethodName == sip.INVITE && r.StatusCode < 300 {
			c.ack() // our ACK was lost: the 200 is being retransmitted
			return false
		}
		return r.CSeq().MethodName == sip.BYE
	})
	return err
}

// forget drops the call from the dispatch tables.
func (c *sipCall) forget() {
	c.u.mu.Lock()
	delete(c.u.calls, c.callID)
	delete(c.u.byes, c.callID)
	c.u.mu.Unlock()
}

// transact sends req and retransmits it at T1, 2T1, 4T1 ... (at most 7 times,
// about 32 s) until a final response that final accepts arrives.
func (c *sipCall) transact(ctx context.Context, req string, final func(*sip.Response) bool) (*sip.Response, error) {
	interval := 500 * time.Millisecond
	t := time.NewTimer(interval)
	defer t.Stop()
	deadline := time.After(32 * time.Second)
	sends, provisional := 1, false
	if _, err := c.u.conn.WriteToUDP([]byte(req), c.u.remote); err != nil {
		return nil, err
	}
	for {
		select {
		case r := <-c.responses:
			if !final(r) {
				continue
			}
			if r.StatusCode < 200 {
				provisional = true // stop retransmitting an INVITE that is being worked on
				continue
			}
			return r, nil
		case <-t.C:
			if !provisional && sends < 7 {
				sends++
				_, _ = c.u.conn.WriteToUDP([]byte(req), c.u.remote)
				interval = min(2*interval, 4*time.Second)
			}
			t.Reset(interval)
		case <-deadline:
			return nil, errors.New("SIP transaction timed out")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *sipCall) request(method, branch, to string, cseq int, extra, body string) string {
	uri := c.reqURI
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, strings.Trim(uri, "<>"))
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\n", c.u.local, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:load@127.0.0.1>;tag=%s\r\n", c.fromTag)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", c.callID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", cseq, method)
	fmt.Fprintf(&b, "Contact: %s\r\n", c.contact)
	b.WriteString("User-Agent: switchboard-load\r\n")
	b.WriteString(extra)
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// rtpFromSDP reads the c= address and the audio m= port of an answer.
func rtpFromSDP(sdp string) (netip.AddrPort, error) {
	var ip netip.Addr
	port := 0
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "c=IN IP4 "); ok {
			ip, _ = netip.ParseAddr(strings.TrimSpace(v))
		}
		if v, ok := strings.CutPrefix(line, "m=audio "); ok && port == 0 {
			port, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	if !ip.IsValid() || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("no audio address in the answer:\n%s", sdp)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}
