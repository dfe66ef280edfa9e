package agent

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendNB and recvNB are one write(2) and one read(2) that never wait,
// whether or not the socket is in blocking mode; an interrupted call is
// made again, and the count is 0 on an error.
func sendNB(fd uintptr, p []byte) (int, error) {
	return sockIO(unix.SYS_SENDTO, fd, p, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
}

func recvNB(fd uintptr, p []byte) (int, error) {
	return sockIO(unix.SYS_RECVFROM, fd, p, unix.MSG_DONTWAIT)
}

func sockIO(trap uintptr, fd uintptr, p []byte, flags int) (int, error) {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	for {
		// MSG_DONTWAIT: the call never blocks, so the scheduler need not hear of it.
		n, _, e := syscall.RawSyscall6(trap, fd, uintptr(base), uintptr(len(p)), uintptr(flags), 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}

// leavePoller takes a bot's TCP connection out of Go's network poller once
// its handshake is done. From then on its reads and writes are the call
// clock's non-blocking ones, and blocking ones (a slow bot's backlog, the
// close handshake) on a goroutine of their own; a message from the bot no
// longer wakes one of our threads only for the poller to find nobody waiting.
// The connection returned is the same socket in blocking mode, its deadlines
// kept by SO_RCVTIMEO and SO_SNDTIMEO; c is closed. On an error c is as it was.
func leavePoller(c net.Conn) (net.Conn, syscall.RawConn, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, nil, errors.ErrUnsupported
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	nfd := -1
	cerr := rc.Control(func(fd uintptr) {
		nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	if cerr != nil || err != nil {
		return nil, nil, errors.Join(cerr, err)
	}
	// Blocking mode belongs to the socket, not the descriptor: c has it too
	// from here, which is harmless as nobody reads or writes c any more.
	if err := unix.SetNonblock(nfd, false); err != nil {
		unix.Close(nfd)
		return nil, nil, err
	}
	local, remote := c.LocalAddr(), c.RemoteAddr()
	f := os.NewFile(uintptr(nfd), "bot "+remote.String()) // blocking: not given to the poller
	frc, err := f.SyscallConn()
	if err != nil {
		unix.SetNonblock(nfd, true)
		f.Close()
		return nil, nil, err
	}
	c.Close() // out of the poller; the socket lives on in nfd
	return &sockConn{f: f, rc: frc, local: local, remote: remote}, frc, nil
}

// sockConn is a TCP socket outside the network poller, as a net.Conn.
type sockConn struct {
	f             *os.File
	rc            syscall.RawConn
	local, remote net.Addr
}

func (s *sockConn) Read(p []byte) (int, error) {
	n, err := s.f.Read(p)
	return n, deadlineErr(err)
}

func (s *sockConn) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	return n, deadlineErr(err)
}

// deadlineErr is a read or write that SO_RCVTIMEO or SO_SNDTIMEO ended, as
// net.Conn says it.
func deadlineErr(err error) error {
	if errors.Is(err, syscall.EAGAIN) {
		return os.ErrDeadlineExceeded
	}
	return err
}

// Close shuts the socket down first, which ends a read or write blocked on it
// (closing alone would wait for them).
func (s *sockConn) Close() error {
	s.rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	return s.f.Close()
}

func (s *sockConn) LocalAddr() net.Addr  { return s.local }
func (s *sockConn) RemoteAddr() net.Addr { return s.remote }

func (s *sockConn) SetDeadline(t time.Time) error {
	return errors.Join(s.SetReadDeadline(t), s.SetWriteDeadline(t))
}

func (s *sockConn) SetReadDeadline(t time.Time) error  { return s.timeout(unix.SO_RCVTIMEO, t) }
func (s *sockConn) SetWriteDeadline(t time.Time) error { return s.timeout(unix.SO_SNDTIMEO, t) }

// timeout sets the socket's timeout for the next blocking read or write to
// the time left until t (none for the zero time). Unlike a poller's deadline
// it does not end a read or write already waiting.
func (s *sockConn) timeout(opt int, t time.Time) error {
	var tv unix.Timeval
	if !t.IsZero() {
		tv = unix.NsecToTimeval(max(int64(time.Until(t)), int64(time.Microsecond)))
	}
	var err error
	cerr := s.rc.Control(func(fd uintptr) { err = unix.SetsockoptTimeval(int(fd), unix.SOL_SOCKET, opt, &tv) })
	return errors.Join(cerr, err)
}
