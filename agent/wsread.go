package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// A direct socket's read side: the bot's frames are read on the call's clock
// (poll, from the session's Audio), one non-blocking read(2) per tick, and
// parsed here (RFC 6455, client side), so no goroutine waits on the socket
// and no netpoller wake-up is paid per message.

const (
	// wsReadBuf is a direct socket's read buffer: a tick's worth of messages
	// from any bot that answers in 20-100 ms chunks. It grows for a larger
	// frame and shrinks back once that has been handled.
	wsReadBuf = 16 << 10
	// wsPollReads bounds the reads of one poll, so a flood cannot hold the clock.
	wsPollReads = 8
)

// Frame opcodes (RFC 6455 5.2); text and binary are coder/websocket's MessageText and MessageBinary.
const (
	opContinuation = 0x0
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// wsReader is the read state of a direct socket.
type wsReader struct {
	mu        sync.Mutex // the read side: poll only TryLocks it, so a tick never waits for close
	handle    func(typ websocket.MessageType, data []byte) error
	done      bool // the bot's close was read or the connection failed: nothing more to read
	closeSent bool // a close frame went out: no more pongs or close answers

	buf  []byte // what was read: buf[r:n] is not parsed yet
	r, n int
	need int // the whole size of the incomplete frame at buf[r:], once its header is in

	msg    []byte                // a fragmented message so far
	msgTyp websocket.MessageType // its type; 0: none under way

	// the non-blocking read(2), kept here so a poll allocates nothing
	try    func(fd uintptr) bool
	tryBuf []byte
	tryN   int
	tryErr error
}

// wsGUID is what Sec-WebSocket-Accept hashes with the key (RFC 6455 1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// dialDirect connects to a ws:// bot with no proxy in between: TCP, our own
// handshake, and frames read on the call's clock (poll).
func dialDirect(dctx context.Context, dial func(context.Context, string, string) (net.Conn, error), u *neturl.URL, header http.Header) (*nbConn, []byte, error) {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	c, err := dial(dctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, nil, err
	}
	if wsWrapConn != nil {
		c = wsWrapConn(c)
	}
	nb := newNBConn(c)
	if nb.rc == nil {
		c.Close()
		return nil, nil, errors.New("no raw socket to read from")
	}
	release := bound(dctx, c.SetDeadline)
	rest, err := handshake(c, u, header)
	if !release() && err == nil {
		err = dctx.Err() // the deadline passed as the handshake ended: it did not count
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		<-dctx.Done() // the socket's deadline is dctx's: it may pass a moment before dctx notices
	}
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return nb, rest, nil
}

// handshakeError is a handshake answered with something other than 101.
type handshakeError struct{ status string }

func (e *handshakeError) Error() string { return "want 101 Switching Protocols" }

// handshake upgrades c to a WebSocket (RFC 6455 4.1) and returns the bytes
// read past the response: the start of the bot's frames.
func handshake(c net.Conn, u *neturl.URL, header http.Header) ([]byte, error) {
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
		u.RequestURI(), u.Host, key)
	header.Write(&req)
	req.WriteString("\r\n")
	if _, err := c.Write(req.Bytes()); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, &handshakeError{resp.Status}
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	switch {
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		return nil, fmt.Errorf("handshake: Upgrade %q, want websocket", resp.Header.Get("Upgrade"))
	case !headerHas(resp.Header, "Connection", "upgrade"):
		return nil, fmt.Errorf("handshake: Connection %q, want Upgrade", resp.Header.Get("Connection"))
	case resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]):
		return nil, errors.New("handshake: wrong Sec-WebSocket-Accept")
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return nil, fmt.Errorf("handshake: extension %q that was not offered", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	rest, _ := br.Peek(br.Buffered())
	return bytes.Clone(rest), nil
}

// headerHas says whether a comma-separated header lists token.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// bound applies ctx's deadline and cancellation to a connection's blocking
// calls through set until release, which clears it again and says whether
// ctx was still live (false: a call may have been cut short by it).
func bound(ctx context.Context, set func(time.Time) error) (release func() bool) {
	if d, ok := ctx.Deadline(); ok {
		set(d)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0)) // in the past: a blocked call returns now
		close(fired)
	})
	return func() bool {
		live := stop()
		if !live {
			<-fired // its past deadline must not land after ours
		}
		set(time.Time{})
		return live
	}
}

// initReader sets up the read side of a direct socket, with the bytes the
// handshake read past the response.
func (w *wsConn) initReader(rest []byte) {
	rd := &w.rd
	rd.buf = make([]byte, max(wsReadBuf, len(rest)))
	rd.n = copy(rd.buf, rest)
	rd.try = func(fd uintptr) bool {
		rd.tryN, rd.tryErr = recvNB(fd, rd.tryBuf)
		return true // one attempt: never wait for the socket
	}
}

// poll reads what the bot has sent since the last tick, without blocking, and
// hands each whole message to the protocol; on the call's clock. How the
// connection ended is reported once, from a goroutine of its own.
func (w *wsConn) poll() {
	rd := &w.rd
	if !w.direct || !rd.mu.TryLock() {
		return // not ours to read, or close is reading
	}
	defer rd.mu.Unlock()
	if rd.done || rd.handle == nil {
		return
	}
	for range wsPollReads {
		more, err := w.readSome(false)
		if err == nil {
			err = w.deliver()
		}
		if err != nil {
			rd.done = true
			w.endLater(err)
			return
		}
		if !more {
			return
		}
	}
}

// pollUnless is poll, left out for this tick when ahead says the caller's
// audio for the tick is queued already and the tick before did poll. What the
// bot sent since then (a clear, a mark, more audio) waits one frame more, and
// a bot that answers in chunks of 40 ms or more, or runs ahead of real time,
// costs half the reads (with 40 ms chunks, every other read found nothing).
// On the call's clock only.
func (w *wsConn) pollUnless(ahead bool) {
	if ahead && !w.skipped {
		w.skipped = true
		return
	}
	w.skipped = false
	w.poll()
}

// deliver hands every whole message in the buffer to the protocol.
func (w *wsConn) deliver() error {
	for {
		typ, data, ok, err := w.nextMessage()
		if err != nil || !ok {
			return err
		}
		if err := w.rd.handle(typ, data); err != nil {
			return fmt.Errorf("%w: %v", ErrBotLost, err)
		}
	}
}

// readSome reads once into the buffer: blocking (with the deadline the caller
// set) or not. more says the read filled the room it had, so there may be more.
func (w *wsConn) readSome(block bool) (more bool, err error) {
	rd := &w.rd
	room := rd.room()
	var k int
	if block {
		k, err = w.raw.Conn.Read(room)
		if k == 0 && err == nil {
			err = io.ErrNoProgress
		}
	} else {
		rd.tryBuf = room
		err = w.raw.rc.Read(rd.try)
		rd.tryBuf = nil
		if err == nil {
			k, err = rd.tryN, rd.tryErr
			if err == syscall.EAGAIN {
				return false, nil // nothing new
			}
			if k == 0 && err == nil {
				err = io.EOF
			}
		}
	}
	rd.n += k
	if err != nil {
		return false, fmt.Errorf("%w: read: %w", ErrBotLost, err)
	}
	return k == len(room), nil
}

// room makes room in the buffer for the next read and returns it: at least
// the rest of the frame under way.
func (rd *wsReader) room() []byte {
	if rd.r > 0 { // what is left is a partial frame: move it to the front
		rd.n = copy(rd.buf, rd.buf[rd.r:rd.n])
		rd.r = 0
	}
	if rd.n == 0 && len(rd.buf) > 4*wsReadBuf {
		rd.buf = make([]byte, wsReadBuf) // a big message has been handled
	}
	if rd.need > len(rd.buf) {
		rd.buf = append(rd.buf[:rd.n], make([]byte, rd.need-rd.n)...)[:rd.need]
	}
	return rd.buf[rd.n:]
}

// nextMessage parses frames from the buffer up to the next whole message (ok)
// and acts on control frames on the way: a ping is answered, a close ends the
// connection (the error says how). data is valid until the next read.
func (w *wsConn) nextMessage() (typ websocket.MessageType, data []byte, ok bool, err error) {
	rd := &w.rd
	for {
		op, fin, p, ok, err := rd.frame()
		if err != nil {
			return 0, nil, false, fmt.Errorf("%w: protocol error: %v", ErrBotLost, err)
		}
		if !ok {
			return 0, nil, false, nil
		}
		switch op {
		case opPing:
			if !rd.closeSent {
				if err := w.control(opPong, p); err != nil {
					return 0, nil, false, fmt.Errorf("%w: write: %v", ErrBotLost, err)
				}
			}
		case opPong:
		case opClose:
			return 0, nil, false, w.closed(p)
		case opContinuation:
			if rd.msgTyp == 0 {
				return 0, nil, false, fmt.Errorf("%w: protocol error: continuation frame with no message started", ErrBotLost)
			}
			if len(rd.msg)+len(p) > wsReadLimit {
				return 0, nil, false, fmt.Errorf("%w: protocol error: message over %d bytes", ErrBotLost, wsReadLimit)
			}
			rd.msg = append(rd.msg, p...)
			if fin {
				typ := rd.msgTyp
				rd.msgTyp = 0
				return typ, rd.msg, true, nil
			}
		default: // text or binary
			if rd.msgTyp != 0 {
				return 0, nil, false, fmt.Errorf("%w: protocol error: a new message inside a fragmented one", ErrBotLost)
			}
			if fin {
				return websocket.MessageType(op), p, true, nil
			}
			rd.msg = append(rd.msg[:0], p...)
			rd.msgTyp = websocket.MessageType(op)
		}
	}
}

// closed answers the bot's close frame (payload p), unless we sent ours
// first, and says how the bot closed.
func (w *wsConn) closed(p []byte) error {
	if len(p) == 1 {
		return fmt.Errorf("%w: protocol error: close frame of 1 byte", ErrBotLost)
	}
	status, reason := int(websocket.StatusNoStatusRcvd), ""
	if len(p) >= 2 {
		status, reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
		p = p[:2]
	}
	if !w.rd.closeSent {
		w.rd.closeSent = true
		w.control(opClose, p) // the status echoed; a failure changes nothing now
	}
	return fmt.Errorf("%w (status %d %q)", ErrBotClosed, status, reason)
}

// frame parses the frame at the front of the buffer: ok once it is all in.
func (rd *wsReader) frame() (op byte, fin bool, payload []byte, ok bool, err error) {
	b := rd.buf[rd.r:rd.n]
	if len(b) < 2 {
		return 0, false, nil, false, nil
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0f
	switch {
	case b[0]&0x70 != 0:
		return 0, false, nil, false, errors.New("RSV bits set, but no extension was negotiated")
	case b[1]&0x80 != 0:
		return 0, false, nil, false, errors.New("masked frame from the server")
	case op > 0x2 && op < opClose || op > opPong:
		return 0, false, nil, false, fmt.Errorf("unknown opcode %#x", op)
	case op >= opClose && !fin:
		return 0, false, nil, false, errors.New("fragmented control frame")
	case op >= opClose && b[1]&0x7f > 125:
		return 0, false, nil, false, errors.New("control frame over 125 bytes")
	}
	hdr, size := 2, uint64(b[1]&0x7f)
	switch size {
	case 126:
		if hdr = 4; len(b) < hdr {
			return 0, false, nil, false, nil
		}
		size = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if hdr = 10; len(b) < hdr {
			return 0, false, nil, false, nil
		}
		size = binary.BigEndian.Uint64(b[2:])
	}
	if size > wsReadLimit {
		return 0, false, nil, false, fmt.Errorf("message over %d bytes", wsReadLimit)
	}
	total := hdr + int(size)
	if len(b) < total {
		rd.need = total
		return 0, false, nil, false, nil
	}
	rd.need = 0
	rd.r += total
	return op, fin, b[hdr:total], true, nil
}

// control writes a control frame (pong, close).
func (w *wsConn) control(op byte, payload []byte) error {
	b := append(w.buf(), payload...)
	err := w.writeFrame(websocket.MessageType(op), b)
	w.mu.Lock()
	w.spare = append(w.spare, b)
	w.mu.Unlock()
	return err
}

// readDirect waits (within ctx) for the bot's next message, for handshakes
// before the clock polls.
func (w *wsConn) readDirect(ctx context.Context) (websocket.MessageType, []byte, error) {
	rd := &w.rd
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.done {
		return 0, nil, net.ErrClosed
	}
	release := bound(ctx, w.raw.SetReadDeadline)
	defer release()
	for {
		typ, data, ok, err := w.nextMessage()
		if err == nil && ok {
			return typ, data, nil
		}
		if err == nil {
			_, err = w.readSome(true)
		}
		if err != nil {
			rd.done = true
			if errors.Is(err, os.ErrDeadlineExceeded) {
				<-ctx.Done() // the socket's deadline is ctx's: it may pass a moment before ctx notices
				err = ctx.Err()
			}
			return 0, nil, err
		}
	}
}

// closeDirect is close on a direct socket: final, our close frame, and the
// bot's answer (or EOF) read within wsCloseWait.
func (w *wsConn) closeDirect(final []byte) {
	rd := &w.rd
	rd.mu.Lock()
	if !rd.done {
		if final != nil {
			w.send(websocket.MessageText, append(w.buf(), final...), false)
		}
		w.mu.Lock()
		w.closing = true
		w.mu.Unlock()
		if !rd.closeSent {
			rd.closeSent = true
			w.control(opClose, append(binary.BigEndian.AppendUint16(nil, uint16(websocket.StatusNormalClosure)), "call ended"...))
		}
		w.raw.SetReadDeadline(time.Now().Add(wsCloseWait))
		for {
			_, _, ok, err := w.nextMessage() // messages after our close are not the call's business
			if err == nil && !ok {
				_, err = w.readSome(true)
			}
			if err != nil {
				break // the bot's close, EOF or the deadline
			}
		}
		rd.done = true
	}
	rd.mu.Unlock()
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.hardClose()
	w.reporting.Wait()
	w.raw.wait()
}
