package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// dialogKey identifies a dialog from our side (RFC 3261 12): Call-ID, our tag, the peer's tag.
type dialogKey struct {
	callID, localTag, remoteTag string
}

// keyFromRequest is the dialog an incoming in-dialog request claims: our tag is in To.
func keyFromRequest(req *sip.Request) (dialogKey, bool) {
	cid, from, to := req.CallID(), req.From(), req.To()
	if cid == nil || from == nil || to == nil {
		return dialogKey{}, false
	}
	lt, _ := to.Params.Get("tag")
	rt, _ := from.Params.Get("tag")
	return dialogKey{callID: cid.Value(), localTag: lt, remoteTag: rt}, true
}

// dialogTable maps dialog keys to calls; safe for concurrent use.
type dialogTable[T any] struct {
	mu sync.Mutex
	m  map[dialogKey]T
}

func (t *dialogTable[T]) put(k dialogKey, v T) {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[dialogKey]T)
	}
	t.m[k] = v
	t.mu.Unlock()
}

func (t *dialogTable[T]) get(k dialogKey) (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[k]
	return v, ok
}

func (t *dialogTable[T]) remove(k dialogKey) {
	t.mu.Lock()
	delete(t.m, k)
	t.mu.Unlock()
}

func (t *dialogTable[T]) all() []T {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]T, 0, len(t.m))
	for _, v := range t.m {
		out = append(out, v)
	}
	return out
}

// dialog is the state needed to send requests inside an established dialog.
type dialog struct {
	key          dialogKey
	localURI     sip.Uri   // our From address
	remoteURI    sip.Uri   // the peer's address (To of our requests)
	remoteTarget sip.Uri   // the peer's Contact: Request-URI of our requests
	routeSet     []sip.Uri // Route headers, in order
	transport    string    // "UDP" | "TCP"
	viaHost      string
	viaPort      int
	laddr        sip.Addr // UDP: our listening socket, so requests leave from our SIP port
	source       string   // TCP: the peer's connection address, reused for our requests
	contact      *sip.ContactHeader
	userAgent    string
	cseq         atomic.Uint32

	mu sync.Mutex // guards remoteTarget, which a target refresh may change
}

func (d *dialog) setTarget(u sip.Uri) {
	d.mu.Lock()
	d.remoteTarget = u
	d.mu.Unlock()
}

// newRequest builds an in-dialog request routed per RFC 3261 12.2.1.1 (loose routing).
func (d *dialog) newRequest(method sip.RequestMethod) *sip.Request {
	d.mu.Lock()
	target := *d.remoteTarget.Clone()
	d.mu.Unlock()
	req := sip.NewRequest(method, target)
	via := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       d.transport,
		Host:            d.viaHost,
		Port:            d.viaPort,
		Params:          sip.NewParams(),
	}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	maxfwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxfwd)
	from := &sip.FromHeader{Address: *d.localURI.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", d.key.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: *d.remoteURI.Clone(), Params: sip.NewParams()}
	if d.key.remoteTag != "" {
		to.Params.Add("tag", d.key.remoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.key.callID)
	req.AppendHeader(&cid)
	seq := d.cseq.Load()
	if method != sip.ACK {
		seq = d.cseq.Add(1)
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	for _, r := range d.routeSet {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	if d.contact != nil {
		req.AppendHeader(d.contact.Clone())
	}
	if d.userAgent != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", d.userAgent))
	}
	req.SetBody(nil)
	req.SetTransport(d.transport)
	if d.laddr.IP != nil {
		d.laddr.Copy(&req.Laddr)
	}
	return req
}

// route picks the connection: over TCP the peer's own connection while it lives, else the
// Route set or the remote target as sipgo's Destination() already does.
func (d *dialog) route(tp *sip.TransportLayer, req *sip.Request) {
	if d.source == "" || !sip.IsReliable(d.transport) {
		return
	}
	if c, err := tp.GetConnection(d.transport, d.source); err == nil && c != nil {
		c.TryClose() // GetConnection took a reference
		req.SetDestination(d.source)
	}
}

// noBuild stops sipgo's client from adding headers: our requests are complete.
func noBuild(*sipgo.Client, *sip.Request) error { return nil }

// do sends a non-INVITE in-dialog request and waits for its final response.
func (d *dialog) do(ctx context.Context, client *sipgo.Client, req *sip.Request) (*sip.Response, error) {
	d.route(client.TransportLayer(), req)
	tx, err := client.TransactionRequest(ctx, req, noBuild)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without a final response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// bye ends the dialog from our side, waiting at most timeout for the answer.
func (d *dialog) bye(client *sipgo.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := d.do(ctx, client, d.newRequest(sip.BYE))
	if err != nil {
		return fmt.Errorf("sip: BYE: %w", err)
	}
	if !res.IsSuccess() && res.StatusCode != sip.StatusCallTransactionDoesNotExists {
		return &StatusError{Code: res.StatusCode, Reason: res.Reason}
	}
	return nil
}

// addrOf splits a "host:port" string into a sip.Addr.
func addrOf(s string) sip.Addr {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return sip.Addr{}
	}
	p, _ := strconv.Atoi(port)
	return sip.Addr{IP: net.ParseIP(host), Port: p, Hostname: host}
}

// StatusError is a final non-2xx SIP response, or the status we map a failure to.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return "sip: " + strconv.Itoa(e.Code) + " " + e.Reason
}

func upperTransport(t string) string { return strings.ToUpper(t) }

func lowerTransport(t string) string { return strings.ToLower(t) }
