package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Limits of a bot connection.
const (
	// wsAudioBacklog is how many caller frames may wait for a slow bot (1.28 s)
	// before new ones are dropped; control messages wait up to wsMaxPending.
	wsAudioBacklog = 64
	// wsReadLimit admits a bot's audio burst in one message (Twilio bots send
	// whole utterances: 30 s of µ-law in base64 is 320 KB).
	wsReadLimit = 4 << 20
	// wsStallDrops: a bot that has taken no message while this many caller
	// frames were dropped (5 s of audio on top of the backlog) is lost.
	wsStallDrops = 250
	// wsCloseWait is how long Close waits for the bot to answer the close handshake.
	wsCloseWait = time.Second
)

var (
	// ErrBotClosed: the bot closed the WebSocket (its way of hanging up).
	ErrBotClosed = errors.New("bot closed the connection")
	// ErrBotLost: the connection to the bot broke without a close handshake.
	ErrBotLost = errors.New("bot connection lost")
)

// wsConn is a WebSocket to a bot, as every WebSocket protocol uses it: the
// call's clock never blocks on it (a message is written from the sender's
// goroutine onto a socket that never blocks, see nbConn). On a direct socket
// the clock also reads the bot's messages (poll, wsread.go); otherwise the
// protocol reads on a goroutine of its own. Close ends it all.
//
// Reads and writes pass no deadline or cancellable context to the WebSocket:
// coder/websocket arms a context.AfterFunc (and the caller a timer) per frame
// for those, which cost more than the frame. Teardown closes the TCP
// connection under it instead, and a bot that stops reading is found by the
// drops it causes (wsStallDrops).
type wsConn struct {
	conn *websocket.Conn // nil on a direct socket
	raw  *nbConn         // the TCP connection, closed to end blocked reads and writes
	log  *slog.Logger
	// direct: the WebSocket runs straight on raw (ws://, no proxy): our own
	// handshake and frames both ways (writeFrame, and rd read on the clock);
	// otherwise (TLS, a proxy tunnel) coder/websocket's conn does it all.
	direct bool
	rd     wsReader // direct sockets only
	// skipped: the last tick left its poll out (pollUnless); the clock's only
	skipped bool

	mu      sync.Mutex
	spare   [][]byte // buffers of written messages, for reuse
	closing bool     // Close has begun: errors from here on are ours
	stall   struct {
		flushed int64 // raw.flushed when the current run of drops began
		drops   int   // audio drops since then
	}

	dropped    atomic.Int64 // messages dropped because the bot was too slow
	report     func(error)  // how the end is reported to the call; set by read
	endOnce    sync.Once
	reporting  sync.WaitGroup // reports made from goroutines of their own (endLater)
	closerDone chan struct{}  // closed when the close handshake's goroutine is done
	readerDone chan struct{}
}

// dialWS connects to a bot within timeout; the connection outlives ctx (the
// session's Close ends it).
func dialWS(ctx context.Context, url string, timeout time.Duration, header http.Header, log *slog.Logger) (*wsConn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A transport of its own, to keep hold of the TCP connection it dials.
	var (
		rawMu sync.Mutex
		raw   *nbConn
	)
	base, _ := http.DefaultTransport.(*http.Transport)
	if base == nil {
		base = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	tr := base.Clone()
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if wsWrapConn != nil {
			c = wsWrapConn(c)
		}
		nb := newNBConn(c)
		rawMu.Lock()
		raw = nb
		rawMu.Unlock()
		return nb, nil
	}
	direct, err := directTCP(tr, url)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	if direct {
		u, _ := neturl.Parse(url) // directTCP parsed it
		raw, rest, err := dialDirect(dctx, dial, u, header)
		if err != nil {
			var he *handshakeError
			switch {
			case errors.As(err, &he):
				return nil, fmt.Errorf("connect %s: HTTP %s: %w", url, he.status, err)
			case dctx.Err() != nil && ctx.Err() == nil:
				return nil, fmt.Errorf("connect %s: no answer within %s", url, timeout)
			}
			return nil, fmt.Errorf("connect %s: %w", url, err)
		}
		w := &wsConn{raw: raw, log: log, direct: true}
		w.initReader(rest)
		raw.start(func(err error) { w.end(fmt.Errorf("%w: write: %v", ErrBotLost, err)) })
		return w, nil
	}
	c, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: header, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("connect %s: HTTP %s: %w", url, resp.Status, err)
		}
		if dctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("connect %s: no answer within %s", url, timeout)
		}
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	c.SetReadLimit(wsReadLimit)
	rawMu.Lock()
	rc := raw
	rawMu.Unlock()
	if rc == nil {
		c.CloseNow()
		return nil, fmt.Errorf("connect %s: the transport dialed no connection of ours", url)
	}
	w := &wsConn{
		conn:       c,
		raw:        rc,
		log:        log,
		closerDone: make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	rc.start(func(err error) { w.end(fmt.Errorf("%w: write: %v", ErrBotLost, err)) })
	return w, nil
}

// directTCP says whether the WebSocket at url runs straight on the TCP
// connection tr dials: ws://, and no proxy for it.
func directTCP(tr *http.Transport, wsURL string) (bool, error) {
	u, err := neturl.Parse(wsURL)
	if err != nil {
		return false, err
	}
	if u.Scheme != "ws" {
		return false, nil // wss: TLS sits between the frames and the socket
	}
	if tr.Proxy == nil {
		return true, nil
	}
	hu := *u
	hu.Scheme = "http" // how coder/websocket asks the transport for it
	p, err := tr.Proxy(&http.Request{URL: &hu, Header: http.Header{}})
	return p == nil && err == nil, nil
}

// wsWrapConn, if set, wraps each bot's TCP connection (tests count writes).
var wsWrapConn func(net.Conn) net.Conn

// wsHeadroom is the room at the front of each message buffer for its frame
// header (2 bytes, 8 of length, a 4-byte mask key), so that header and
// payload leave in one write with no copy.
const wsHeadroom = 14

// buf returns a buffer for the next message: append the payload to it (reused,
// so steady-state audio does not allocate).
func (w *wsConn) buf() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.spare); n > 0 {
		b := w.spare[n-1]
		w.spare = w.spare[:n-1]
		return b[:wsHeadroom]
	}
	return make([]byte, wsHeadroom, 512)
}

// send writes a message built in a buffer from buf as one frame; it never blocks. A bot
// that has fallen wsAudioBacklog messages behind loses audio (counted), and
// one that takes nothing while wsStallDrops frames are dropped is lost.
func (w *wsConn) send(typ websocket.MessageType, b []byte, audio bool) {
	backlog := w.raw.backlog.Load()
	w.mu.Lock()
	closing := w.closing
	if closing || (audio && backlog >= int64(wsAudioBacklog*len(b))) {
		w.spare = append(w.spare, b)
		stalled := false
		if audio && !closing {
			if f := w.raw.flushed.Load(); w.stall.flushed != f {
				w.stall.flushed, w.stall.drops = f, 0
			}
			w.stall.drops++
			stalled = w.stall.drops == wsStallDrops
		}
		w.mu.Unlock()
		if n := w.dropped.Add(1); !closing && n&(n-1) == 0 { // log at 1, 2, 4, 8, ... drops
			w.log.Warn("bot too slow, message dropped", "dropped", n, "audio", audio)
		}
		if stalled {
			w.endLater(fmt.Errorf("%w: the bot took no message for %d dropped frames", ErrBotLost, wsStallDrops))
		}
		return
	}
	w.mu.Unlock()
	var err error
	if w.direct {
		err = w.writeFrame(typ, b)
	} else {
		err = w.conn.Write(context.Background(), typ, b[wsHeadroom:])
	}
	w.mu.Lock()
	w.spare = append(w.spare, b)
	w.mu.Unlock()
	if err != nil {
		w.endLater(fmt.Errorf("%w: write: %v", ErrBotLost, err))
	}
}

// writeFrame frames and masks the message in b (payload after wsHeadroom) and
// writes it with one write(2) on a direct socket, which coder/websocket never
// touches (its per-message channel lock, message writer and buffer copy cost
// more than the frame). Every frame, control frames too, is one nbConn.Write,
// which keeps whole writes in order, so frames from the clock and from close
// never mix.
func (w *wsConn) writeFrame(typ websocket.MessageType, b []byte) error {
	p := b[wsHeadroom:]
	n := len(p)
	hdr := 2
	switch {
	case n > 0xffff:
		hdr = 10
	case n > 125:
		hdr = 4
	}
	f := b[wsHeadroom-hdr-4:]
	f[0] = 0x80 | byte(typ) // FIN, and the opcode: coder/websocket's message types are RFC 6455's
	switch hdr {
	case 2:
		f[1] = 0x80 | byte(n) // masked: a client masks every frame
	case 4:
		f[1] = 0x80 | 126
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f[1] = 0x80 | 127
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	key := rand.Uint32() // the runtime's ChaCha8, seeded from the OS: unpredictable, as RFC 6455 asks
	binary.LittleEndian.PutUint32(f[hdr:], key)
	maskBytes(p, key)
	_, err := w.raw.Write(f)
	return err
}

// maskBytes XORs p with the 4-byte key (little-endian as it stands on the wire).
func maskBytes(p []byte, key uint32) {
	k8 := uint64(key) | uint64(key)<<32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k8)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= byte(key >> (8 * (i & 3)))
	}
}

// sendJSON queues a control message.
func (w *wsConn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.log.Error("encode message for bot", "err", err)
		return
	}
	w.send(websocket.MessageText, append(w.buf(), b...), false)
}

// readJSON waits for the bot's next message, which must be JSON text; for
// handshakes before the reader runs.
func (w *wsConn) readJSON(ctx context.Context, v any) error {
	var (
		typ  websocket.MessageType
		data []byte
		err  error
	)
	if w.direct {
		typ, data, err = w.readDirect(ctx)
	} else {
		typ, data, err = w.conn.Read(ctx)
	}
	if err != nil {
		return err
	}
	if typ != websocket.MessageText {
		return fmt.Errorf("want a JSON text message, got binary")
	}
	return json.Unmarshal(data, v)
}

// startReading hands the bot's messages to handle from here on: from poll on
// a direct socket, else from read on a goroutine of its own.
func (w *wsConn) startReading(handle func(typ websocket.MessageType, data []byte) error, report func(error)) {
	w.mu.Lock()
	w.report = report
	w.mu.Unlock()
	if w.direct {
		w.rd.mu.Lock()
		if err := w.raw.leavePoller(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			w.log.Debug("bot socket stays in the network poller", "err", err)
		}
		w.rd.handle = handle
		w.rd.mu.Unlock()
		return
	}
	go w.read(handle)
}

// read calls handle for each message from the bot until the connection ends,
// then reports, once, what ended it: ErrBotClosed (the bot's hang-up) or
// ErrBotLost. Nothing is reported once Close has begun. handle's data is
// reused after it returns; an error from handle ends the connection as lost.
func (w *wsConn) read(handle func(typ websocket.MessageType, data []byte) error) {
	defer close(w.readerDone)
	var buf bytes.Buffer
	for {
		typ, r, err := w.conn.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err == nil {
			err = handle(typ, buf.Bytes())
			if err != nil {
				err = fmt.Errorf("%w: %v", ErrBotLost, err)
			}
		} else if st := websocket.CloseStatus(err); st != -1 {
			var ce websocket.CloseError
			errors.As(err, &ce)
			err = fmt.Errorf("%w (status %d %q)", ErrBotClosed, int(st), ce.Reason)
		} else {
			err = fmt.Errorf("%w: %v", ErrBotLost, err)
		}
		if err != nil {
			w.end(err)
			return
		}
	}
}

// end reports how the connection ended, once, unless Close has begun.
func (w *wsConn) end(err error) {
	w.mu.Lock()
	closing, report := w.closing, w.report
	w.mu.Unlock()
	if closing {
		return
	}
	w.endOnce.Do(func() {
		w.log.Info("bot connection ended", "err", err)
		if report != nil {
			report(err)
		}
	})
	if errors.Is(err, ErrBotLost) {
		w.hardClose() // nothing more will reach this bot
	}
}

// endLater is end from a goroutine of its own, for callers on the call's
// clock: reporting may wait (a chain's Fail waits for a fallback's dial).
func (w *wsConn) endLater(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing {
		return // end would do nothing; and close may be waiting for reporting
	}
	w.reporting.Add(1)
	go func() {
		defer w.reporting.Done()
		w.end(err)
	}()
}

// hardClose closes the TCP connection, which ends a read or write blocked on it.
func (w *wsConn) hardClose() {
	w.raw.Close()
}

// reportTo maps how a bot connection ended to the call: the bot's close is a
// hang-up, anything else a failure the bridge may fall back from.
func reportTo(ctl Controls) func(error) {
	return func(err error) {
		if errors.Is(err, ErrBotClosed) {
			ctl.Hangup(err.Error())
			return
		}
		Fail(ctl, err)
	}
}

// close sends final (if any) after everything queued, closes the WebSocket
// with a normal closure and waits for both goroutines; it returns within
// about wsCloseWait even if the bot never answers the close handshake.
func (w *wsConn) close(final []byte) {
	w.mu.Lock()
	reading := w.report != nil
	w.mu.Unlock()
	if !reading {
		w.abort()
		return
	}
	if w.direct {
		w.closeDirect(final)
		w.logDropped()
		return
	}
	if final != nil {
		w.send(websocket.MessageText, append(w.buf(), final...), false)
	}
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	go func() { // coder/websocket's Close waits for the bot's answer
		defer close(w.closerDone)
		w.conn.Close(websocket.StatusNormalClosure, "call ended")
	}()
	t := time.NewTimer(wsCloseWait)
	defer t.Stop()
	select {
	case <-w.readerDone: // the bot answered the close handshake
	case <-t.C:
	}
	w.hardClose() // ends a reader still waiting and the writer's close handshake
	<-w.readerDone
	w.conn.CloseNow()
	<-w.closerDone
	w.reporting.Wait()
	w.raw.wait()
	w.logDropped()
}

func (w *wsConn) logDropped() {
	if n := w.dropped.Load(); n > 0 {
		w.log.Warn("messages to the bot dropped (bot too slow)", "dropped", n)
	}
}

// abort drops the connection without a close handshake (a bot that failed
// its start); the reader must not be running.
func (w *wsConn) abort() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.hardClose()
	if w.conn != nil {
		w.conn.CloseNow()
	}
	w.reporting.Wait()
	w.raw.wait()
}
