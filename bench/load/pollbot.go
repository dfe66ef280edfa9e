package main

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The bot's sockets are polled, not waited on: a gateway on another machine
// never pays for waking its bot, but on loopback a sender's write runs the
// receiver's wake-up (a Go netpoller blocked in epoll_wait) inside the
// sender's system call. So after the WebSocket handshake each connection
// leaves Go's network poller and one goroutine looks at all of them every
// pollEvery with a non-blocking epoll_wait: nobody sleeps on the sockets, and
// the gateway's writes only queue their bytes.
const (
	pollEvery  = 2 * time.Millisecond
	maxWSFrame = 1 << 20 // larger frames from the gateway close the connection
	pollEvents = 256
	wsGUID     = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	sendWaits  = 200 // ms a reply may wait for room in the socket before the connection is dropped
)

// polledBot is the Twilio echo bot (botStream) served on polled sockets.
type polledBot struct {
	botCounters
	srv  *http.Server
	url  string
	ep   int
	mu   sync.Mutex // guards conns between the handshake goroutines and the poller
	conn map[int32]*polledConn
	stop chan struct{}
	done chan struct{}
}

func startPolledBot() (*polledBot, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	b := &polledBot{url: "ws://" + ln.Addr().String() + "/media", ep: ep, conn: map[int32]*polledConn{},
		stop: make(chan struct{}), done: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.accept), ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	go b.poll()
	return b, nil
}

func (b *polledBot) address() string { return b.url }

func (b *polledBot) close() {
	b.srv.Close()
	close(b.stop)
	<-b.done
	b.mu.Lock()
	for _, c := range b.conn {
		unix.Close(c.fd)
	}
	b.conn = nil
	b.mu.Unlock()
	unix.Close(b.ep)
}

// accept is the WebSocket handshake (RFC 6455 4.2); the connection then goes
// to the poller.
func (b *polledBot) accept(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		http.Error(w, "a WebSocket upgrade is expected", http.StatusBadRequest)
		return
	}
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	if _, err := nc.Write([]byte(resp)); err != nil {
		nc.Close()
		return
	}
	if rw.Reader.Buffered() > 0 { // a client waits for the 101 before it sends (RFC 6455 4.1)
		nc.Close()
		return
	}
	fd, err := leavePoller(nc)
	if err != nil {
		nc.Close()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if b.conn == nil || unix.EpollCtl(b.ep, unix.EPOLL_CTL_ADD, fd, &ev) != nil { // closing, or no room
		unix.Close(fd)
		return
	}
	b.conn[int32(fd)] = &polledConn{fd: fd}
	b.conns.Add(1)
}

// leavePoller dups nc's socket (non-blocking, as the runtime set it) and
// closes nc, which takes the socket out of the runtime's epoll.
func leavePoller(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	nc.Close()
	return fd, nil
}

// poll is the bot's one goroutine after the handshakes.
func (b *polledBot) poll() {
	defer close(b.done)
	events := make([]unix.EpollEvent, pollEvents)
	buf := make([]byte, 64<<10)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		for {
			n, err := unix.EpollWait(b.ep, events, 0)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return
			}
			for _, ev := range events[:max(n, 0)] {
				b.mu.Lock()
				c := b.conn[ev.Fd]
				b.mu.Unlock()
				if c != nil && !b.serve(c, buf) {
					b.drop(c)
				}
			}
			if n < len(events) {
				break
			}
		}
	}
}

func (b *polledBot) drop(c *polledConn) {
	b.mu.Lock()
	if b.conn != nil {
		delete(b.conn, int32(c.fd))
	}
	b.mu.Unlock()
	unix.EpollCtl(b.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
}

// polledConn is one gateway connection: a non-blocking socket and the bytes
// of a frame not complete yet.
type polledConn struct {
	fd     int
	in     []byte // unparsed input
	msg    []byte // a fragmented message so far
	out    []byte // a reply frame, reused
	stream botStream
}

// serve reads what is waiting and answers each complete frame; false ends the
// connection.
func (b *polledBot) serve(c *polledConn, buf []byte) bool {
	for {
		n, err := unix.Read(c.fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return true
		}
		if err != nil || n == 0 {
			return false // closed by the gateway, or broken
		}
		c.in = append(c.in, buf[:n]...)
		rest, ok := b.frames(c, c.in)
		if !ok {
			return false
		}
		c.in = append(c.in[:0], rest...)
		if n < len(buf) {
			return true
		}
	}
}

// frames handles every complete frame at the start of p; it returns what is
// left (an incomplete frame).
func (b *polledBot) frames(c *polledConn, p []byte) ([]byte, bool) {
	for {
		if len(p) < 2 {
			return p, true
		}
		fin, op := p[0]&0x80 != 0, p[0]&0x0f
		masked, size, hdr := p[1]&0x80 != 0, uint64(p[1]&0x7f), 2
		switch size {
		case 126:
			if len(p) < 4 {
				return p, true
			}
			size, hdr = uint64(binary.BigEndian.Uint16(p[2:])), 4
		case 127:
			if len(p) < 10 {
				return p, true
			}
			size, hdr = binary.BigEndian.Uint64(p[2:]), 10
		}
		if !masked || p[0]&0x70 != 0 || size > maxWSFrame {
			return nil, false // a client must mask (RFC 6455 5.1); no extensions were agreed
		}
		if uint64(len(p)) < uint64(hdr)+4+size {
			return p, true
		}
		mask := p[hdr : hdr+4]
		payload := p[hdr+4 : hdr+4+int(size)]
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
		p = p[hdr+4+int(size):]
		if !b.frame(c, fin, op, payload) {
			return nil, false
		}
	}
}

// frame acts on one unmasked frame.
func (b *polledBot) frame(c *polledConn, fin bool, op byte, payload []byte) bool {
	switch op {
	case 0x0, 0x1, 0x2: // continuation, text, binary
		msg := payload
		if !fin || len(c.msg) > 0 {
			c.msg = append(c.msg, payload...)
			if !fin {
				return true
			}
			msg = c.msg
			c.msg = c.msg[:0] // msg keeps the bytes until the next frame
		}
		if op == 0x2 {
			return true
		}
		reply, _ := c.stream.handle(msg) // after stop the gateway closes the WebSocket
		switch {
		case c.stream.mark:
			b.marks.Add(1)
		case reply != nil:
			b.media.Add(1)
			return c.send(0x1, reply)
		}
		return true
	case 0x8: // close: answer with the gateway's code, then end
		code := payload
		if len(code) > 2 {
			code = code[:2]
		}
		c.send(0x8, code)
		return false
	case 0x9: // ping
		return c.send(0xA, payload)
	}
	return true // pong
}

// send writes one unmasked frame (a server's, RFC 6455 5.1). A socket that
// stays full for sendWaits is a gateway not reading: the connection ends.
func (c *polledConn) send(op byte, payload []byte) bool {
	c.out = append(c.out[:0], 0x80|op)
	switch n := len(payload); {
	case n < 126:
		c.out = append(c.out, byte(n))
	case n < 1<<16:
		c.out = append(c.out, 126, byte(n>>8), byte(n))
	default:
		c.out = binary.BigEndian.AppendUint64(append(c.out, 127), uint64(n))
	}
	c.out = append(c.out, payload...)
	for p, waits := c.out, 0; len(p) > 0; {
		n, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			p = p[n:]
		case unix.EINTR:
		case unix.EAGAIN: // a full socket buffer: the gateway reads every 20 ms
			if waits++; waits > sendWaits {
				return false
			}
			time.Sleep(time.Millisecond)
		default:
			return false
		}
	}
	return true
}
