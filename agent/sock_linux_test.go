package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPair is a connected pair of loopback TCP connections: ours and the peer's.
func tcpPair(t *testing.T) (ours, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	ours, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-acc
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close() })
	return ours, peer
}

// A socket out of the poller still carries bytes both ways, never waits in
// the clock's reads and writes, and keeps net.Conn's deadlines and Close.
func TestLeavePoller(t *testing.T) {
	noLeaks(t)
	c, peer := tcpPair(t)
	conn, rc, err := leavePoller(c)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("the connection given up still writes")
	}
	var fd uintptr
	rc.Control(func(f uintptr) { fd = f })
	if fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("socket flags %#x (%v): want blocking, or blocking reads would not wait", fl, err)
	}

	// the clock's read finds nothing without waiting, then the peer's bytes
	buf := make([]byte, 64)
	start := time.Now()
	if n, err := recvNB(fd, buf); err != syscall.EAGAIN || n != 0 {
		t.Fatalf("read of an empty socket: %d, %v; want EAGAIN", n, err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("read of an empty socket waited %v", d)
	}
	peer.Write([]byte("from the bot"))
	deadline := time.Now().Add(2 * time.Second)
	var got []byte
	for len(got) < len("from the bot") && time.Now().Before(deadline) {
		if n, err := recvNB(fd, buf); err == nil {
			got = append(got, buf[:n]...)
		}
	}
	if string(got) != "from the bot" {
		t.Fatalf("read %q", got)
	}
	if n, err := sendNB(fd, []byte("to the bot")); n != len("to the bot") || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(peer, buf[:len("to the bot")]); err != nil || string(buf[:len("to the bot")]) != "to the bot" {
		t.Fatalf("the bot read %q, %v", buf[:len("to the bot")], err)
	}

	// a blocking read ends at its deadline, as a net.Conn's does
	conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start = time.Now()
	if _, err := conn.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("deadline of 50ms ended the read after %v", d)
	}
	conn.SetReadDeadline(time.Time{})

	// Close ends a write blocked on a full socket (the bot reads nothing)
	// and a read blocked with no deadline
	readDone := make(chan error, 1)
	go func() {
		_, err := conn.Read(buf)
		readDone <- err
	}()
	writeDone := make(chan error, 1)
	go func() {
		big := bytes.Repeat([]byte("a"), 64<<20)
		_, err := conn.Write(big)
		writeDone <- err
	}()
	time.Sleep(100 * time.Millisecond) // both blocked by now
	conn.Close()
	for name, ch := range map[string]chan error{"read": readDone, "write": writeDone} {
		select {
		case err := <-ch:
			if name == "write" && err == nil {
				t.Fatal("a write of 64 MB to a bot that reads nothing succeeded")
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Close did not end the blocked %s", name)
		}
	}
}

// A direct bot that never answers our close frame: Close returns after
// about wsCloseWait, the bot has had our close frame and then the end of
// the stream, and nothing of the connection is left running.
func TestDirectCloseUnanswered(t *testing.T) {
	noLeaks(t)
	bt := newRawBot(t)
	s, err := Twilio{URL: bt.url(), ConnectTimeout: time.Second}.Start(context.Background(), Call{}, newLiveControls())
	if err != nil {
		t.Fatal(err)
	}
	c := (<-bt.conn).(*bufConn)
	defer c.Close()
	if _, ok := sessionWS(s).raw.Conn.(*sockConn); !ok {
		t.Fatalf("the bot's socket is a %T: still in the network poller", sessionWS(s).raw.Conn)
	}
	frames := make(chan []byte, 16)
	go func() {
		defer close(frames)
		for {
			p, err := clientFrame(c.br)
			if err != nil {
				return
			}
			frames <- p
		}
	}()
	start := time.Now()
	s.Close()
	d := time.Since(start)
	if d < wsCloseWait-100*time.Millisecond || d > wsCloseWait+2*time.Second {
		t.Fatalf("Close returned after %v; want about %v", d, wsCloseWait)
	}
	var last []byte
	for p := range frames { // ends at the end of the stream
		last = p
	}
	if !bytes.Contains(last, []byte("call ended")) {
		t.Fatalf("last frame %q; want our close frame", last)
	}
}
