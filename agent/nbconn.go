package agent

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// wsMaxPending bounds the bytes a bot connection holds for a bot that does not
// read; past it the connection is lost (audio is dropped well before, see send).
const wsMaxPending = 4 << 20

var errBacklog = errors.New("bot reads too slowly: write backlog full")

// nbConn is the TCP connection under a bot's WebSocket, made so that a write
// never blocks: once started, Write tries one non-blocking write(2) from the
// caller's goroutine (the call's clock: no goroutine wake-up per message),
// and whatever the socket does not take waits in pending for a flusher
// goroutine that writes it in order, blocking as long as it must. So
// coder/websocket's Write returns at once even for a bot that has stopped
// reading, and pending says how far behind that bot is.
type nbConn struct {
	net.Conn
	rc syscall.RawConn // nil: no raw socket (a wrapped conn); every write goes through the flusher

	mu       sync.Mutex
	started  bool
	running  bool   // the flusher goroutine exists (started on the first backlog: most bots never need it)
	pending  []byte // accepted, not yet handed to the socket
	spare    []byte
	flushing bool  // the flusher owns the socket's write side
	err      error // the first write error; every later Write returns it

	backlog atomic.Int64 // bytes in pending and in the flusher's hands
	flushed atomic.Int64 // bytes the flusher has written: progress of a slow bot
	onErr   func(error)  // told of a write error the flusher met

	// the non-blocking attempt, kept here so a write allocates nothing
	try       func(fd uintptr) bool
	tryBuf    []byte
	tryN      int
	tryErr    error
	wake      chan struct{}
	done      chan struct{}
	exited    chan struct{}
	closeOnce sync.Once
}

func newNBConn(c net.Conn) *nbConn {
	n := &nbConn{Conn: c, wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	if sc, ok := c.(syscall.Conn); ok {
		n.rc, _ = sc.SyscallConn()
	}
	n.try = func(fd uintptr) bool {
		n.tryN, n.tryErr = sendNB(fd, n.tryBuf)
		return true // one attempt: never wait for the socket
	}
	return n
}

// start switches to non-blocking writes (after the handshake, which wrote
// through plainly); onErr hears of a failed flush.
func (c *nbConn) start(onErr func(error)) {
	c.mu.Lock()
	c.started, c.onErr = true, onErr
	c.mu.Unlock()
}

// Write takes all of p without blocking, or fails for good.
func (c *nbConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.started {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	total := len(p)
	if len(c.pending) == 0 && !c.flushing && c.rc != nil {
		c.tryBuf = p
		err := c.rc.Write(c.try)
		c.tryBuf = nil
		if err == nil {
			err = c.tryErr
		}
		if err != nil && err != syscall.EAGAIN {
			c.err = err
			return c.tryN, err
		}
		if p = p[c.tryN:]; len(p) == 0 {
			return total, nil
		}
	}
	if len(c.pending)+len(p) > wsMaxPending {
		c.err = errBacklog
		return 0, c.err
	}
	c.pending = append(c.pending, p...)
	c.backlog.Add(int64(len(p)))
	if !c.running {
		c.running = true
		go c.flusher()
	}
	if !c.flushing {
		c.flushing = true
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return total, nil
}

// flusher writes pending out, blocking on the socket, until Close.
func (c *nbConn) flusher() {
	defer close(c.exited)
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		for {
			c.mu.Lock()
			out := c.pending
			if len(out) == 0 || c.err != nil {
				c.flushing = false
				c.mu.Unlock()
				break
			}
			c.pending = c.spare[:0]
			c.mu.Unlock()

			n, err := c.Conn.Write(out)
			c.flushed.Add(int64(n))
			c.backlog.Add(-int64(len(out)))
			c.mu.Lock()
			c.spare = out[:0]
			if err != nil && c.err == nil {
				c.err = err
			}
			onErr := c.onErr
			c.mu.Unlock()
			if err != nil {
				if onErr != nil {
					onErr(err)
				}
				break
			}
		}
	}
}

// leavePoller takes the socket out of Go's network poller (see leavePoller),
// unless a flush is under way or the platform has no way; the caller keeps
// the read side still meanwhile.
func (c *nbConn) leavePoller() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rc == nil || c.running || c.err != nil {
		return errors.ErrUnsupported
	}
	conn, rc, err := leavePoller(c.Conn)
	if err != nil {
		return err
	}
	c.Conn, c.rc = conn, rc
	return nil
}

// Close closes the socket, which ends a flush blocked on it, and stops the flusher.
func (c *nbConn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = net.ErrClosed // and no flusher starts after this
	}
	conn := c.Conn
	c.mu.Unlock()
	err := conn.Close()
	c.closeOnce.Do(func() { close(c.done) })
	return err
}

// wait returns once the flusher has ended (after Close).
func (c *nbConn) wait() {
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if running {
		<-c.exited
	}
}
