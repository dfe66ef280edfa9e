package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	rtpBatch   = 64      // datagrams per recvmmsg
	rtpBufSize = 2048    // one received datagram; RTP here is 172 bytes
	ctlSize    = 64      // one SCM_TIMESTAMPNS control message (32 bytes) with room to spare
	sockBuf    = 8 << 20 // SO_RCVBUF and SO_SNDBUF: seconds of 5,000 calls' returned packets, not one 1 ms tick
)

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2); Go pads it to the C layout.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// rtpSocket is the one RTP socket of every call: each call's SDP offers its
// address, and returned packets are demultiplexed by their source (the
// gateway answers each call from a port of its own). The sender writes each
// wheel slot with one sendmmsg and, on the same 1 ms tick, drains what came
// back with recvmmsg: arrival times are the kernel's, so reading late changes
// no figure and saves a wakeup per packet. Without kernel timestamps a
// goroutine of its own reads instead, as soon as packets arrive.
type rtpSocket struct {
	rtp    int // fd; not in Go's network poller, so the gateway's packets wake no thread of ours
	rtcp   int // fd on port+1, where the gateway sends its RTCP
	rc     rawFD
	port   int
	kernel bool // SO_TIMESTAMPNS is on

	mu    sync.RWMutex
	calls map[netip.AddrPort]*mediaCall // the gateway's RTP address of each call → the call

	// Receive side, owned by the reader goroutine (or the sender, see drain)
	// until it has stopped.
	started bool
	done    chan struct{}
	foreign uint64 // datagrams from no call's gateway address
	first   string // the first of them: source, size, first bytes, when
	rmsgs   [rtpBatch]mmsghdr
	riov    [rtpBatch]unix.Iovec
	rname   [rtpBatch]unix.RawSockaddrInet4
	rbuf    [rtpBatch][rtpBufSize]byte
	rctl    [rtpBatch][ctlSize]byte
	rn      int
	rerr    syscall.Errno
	readFn  func(fd uintptr) bool // made once, so a read allocates nothing
	drainFn func(fd uintptr) bool

	// Send side, used by one goroutine at a time (the sender).
	smsgs   []mmsghdr
	siov    []unix.Iovec
	sn      int    // messages queued
	soff    int    // messages written so far by flush
	sendErr uint64 // datagrams sendmmsg refused (reported at the end of a run)
	writeFn func(fd uintptr) bool
}

func newRTPSocket() (*rtpSocket, error) {
	rtp, rtcp, port, err := listenPair()
	if err != nil {
		return nil, err
	}
	rc := rawFD(rtp)
	s := &rtpSocket{rtp: rtp, rtcp: rtcp, rc: rc, port: port,
		calls: map[netip.AddrPort]*mediaCall{}, done: make(chan struct{})}
	_ = rc.Control(func(fd uintptr) {
		s.kernel = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil
		// The FORCE options pass net.core.rmem_max/wmem_max, as root only.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBuf) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, sockBuf)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuf) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuf)
		}
	})
	for i := range s.rmsgs {
		s.riov[i].Base = &s.rbuf[i][0]
		s.riov[i].SetLen(rtpBufSize)
		h := &s.rmsgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&s.rname[i]))
		h.Iov = &s.riov[i]
		h.SetIovlen(1)
		h.Control = &s.rctl[i][0]
		s.rearm(i)
	}
	s.readFn = s.recv
	s.drainFn = func(fd uintptr) bool {
		if !s.recv(fd) {
			s.rn, s.rerr = 0, 0 // nothing waiting
		}
		return true
	}
	s.writeFn = s.send
	return s, nil
}

// start reads the socket in a goroutine of its own until close, unless the
// sender drains it (kernel timestamps).
func (s *rtpSocket) start() {
	if s.kernel {
		return
	}
	s.started = true
	go func() {
		defer close(s.done)
		for s.readBatch() >= 0 {
		}
	}()
}

// listenPair binds the RTP socket on a port whose next one is free for the
// RTCP the gateway sends there; that socket is never read (the kernel drops
// what overflows its small buffer), so the reports land nowhere else.
func listenPair() (rtp, rtcp, port int, err error) {
	for range 100 {
		if rtp, err = udpSocket(0); err != nil {
			return -1, -1, 0, err
		}
		sa, err := unix.Getsockname(rtp)
		if err != nil {
			unix.Close(rtp)
			return -1, -1, 0, err
		}
		port = sa.(*unix.SockaddrInet4).Port
		if port < 65535 {
			if rtcp, err = udpSocket(port + 1); err == nil {
				_ = unix.SetsockoptInt(rtcp, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
				return rtp, rtcp, port, nil
			}
		}
		unix.Close(rtp)
	}
	return -1, -1, 0, errors.New("no free pair of UDP ports for RTP and RTCP")
}

// udpSocket is a non-blocking UDP socket on 127.0.0.1:port made without the
// net package, so that no epoll instance watches it.
func udpSocket(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// rawFD runs I/O callbacks on a socket outside the network poller; a callback
// that finds no data or no room (false) is retried after a millisecond.
type rawFD int

func (r rawFD) Read(f func(fd uintptr) bool) error {
	for !f(uintptr(r)) {
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (r rawFD) Write(f func(fd uintptr) bool) error { return r.Read(f) }

func (r rawFD) Control(f func(fd uintptr)) error {
	f(uintptr(r))
	return nil
}

// rearm restores what recvmmsg overwrote in message i.
func (s *rtpSocket) rearm(i int) {
	h := &s.rmsgs[i].hdr
	h.Namelen = unix.SizeofSockaddrInet4
	h.SetControllen(ctlSize)
	h.Flags = 0
}

// add routes datagrams from the gateway's address remote to m.
func (s *rtpSocket) add(remote netip.AddrPort, m *mediaCall) {
	s.mu.Lock()
	s.calls[remote] = m
	s.mu.Unlock()
}

// close stops the reader and waits for it; the calls' receive figures are final then.
func (s *rtpSocket) close() {
	unix.Close(s.rtp)
	unix.Close(s.rtcp)
	if s.started {
		<-s.done
	}
}

// recv is one non-blocking recvmmsg; false asks the poller to wait for data.
func (s *rtpSocket) recv(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.rmsgs[0])), rtpBatch,
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			s.rn, s.rerr = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		s.rn, s.rerr = 0, e
		return true
	}
}

// readBatch waits for datagrams and hands each to its call; it returns how
// many it read, or -1 once the socket is closed.
func (s *rtpSocket) readBatch() int {
	if err := s.rc.Read(s.readFn); err != nil || s.rerr == unix.EBADF {
		return -1
	}
	if s.rerr != 0 {
		return 0 // e.g. a queued ICMP error; the next datagram is still there
	}
	s.dispatchAll(time.Now()) // without kernel timestamps, as close to the read as this gets
	return s.rn
}

// drain hands every datagram waiting to its call without blocking; it
// returns how many there were.
func (s *rtpSocket) drain() (n int) {
	for {
		if err := s.rc.Read(s.drainFn); err != nil || s.rerr != 0 {
			return n // closed, or an error the next tick's read gets past
		}
		s.dispatchAll(time.Now())
		n += s.rn
		if s.rn < rtpBatch {
			return n
		}
	}
}

// dispatchAll hands the s.rn datagrams of the last read to their calls.
func (s *rtpSocket) dispatchAll(now time.Time) {
	s.mu.RLock()
	for i := range s.rn {
		s.dispatch(i, now)
		s.rearm(i)
	}
	s.mu.RUnlock()
}

// dispatch gives datagram i to the call whose gateway address sent it.
func (s *rtpSocket) dispatch(i int, now time.Time) {
	msg := &s.rmsgs[i]
	sa := &s.rname[i]
	if sa.Family != unix.AF_INET {
		s.foreign++
		return
	}
	from := netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), beUint16(&sa.Port))
	m := s.calls[from]
	if m == nil {
		if s.foreign++; s.first == "" {
			p := s.rbuf[i][:min(int(msg.n), rtpBufSize)]
			s.first = fmt.Sprintf("%v %d bytes % x at %s", from, msg.n, p[:min(len(p), 12)], now.Format("15:04:05.000"))
		}
		return
	}
	if s.kernel {
		if t, ok := arrival(s.rctl[i][:min(int(msg.hdr.Controllen), ctlSize)]); ok {
			now = t
		}
	}
	m.receive(s.rbuf[i][:min(int(msg.n), rtpBufSize)], now)
}

// queue adds pkt for dst to the next flush; pkt and dst must stay unchanged until then.
func (s *rtpSocket) queue(pkt []byte, dst *unix.RawSockaddrInet4) {
	if s.sn == len(s.smsgs) {
		// Grows only when a slot holds more calls than any before it.
		s.smsgs = append(s.smsgs, mmsghdr{})
		s.siov = append(s.siov, unix.Iovec{})
		for i := range s.smsgs {
			s.smsgs[i].hdr.Iov = &s.siov[i]
			s.smsgs[i].hdr.SetIovlen(1)
		}
	}
	h := &s.smsgs[s.sn].hdr
	h.Name = (*byte)(unsafe.Pointer(dst))
	h.Namelen = unix.SizeofSockaddrInet4
	s.siov[s.sn].Base = &pkt[0]
	s.siov[s.sn].SetLen(len(pkt))
	s.sn++
}

// flush writes the queued datagrams with as few sendmmsg calls as the kernel takes.
func (s *rtpSocket) flush() {
	if s.sn == 0 {
		return
	}
	s.soff = 0
	_ = s.rc.Write(s.writeFn)
	s.sn = 0
}

// send is sendmmsg from soff on; false asks the poller to wait for room.
func (s *rtpSocket) send(fd uintptr) bool {
	for s.soff < s.sn {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.smsgs[s.soff])), uintptr(s.sn-s.soff),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			s.soff += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			s.sendErr++ // the first message failed (sendmmsg reports only that); skip it
			s.soff++
		}
	}
	return true
}

// beUint16 reads a sockaddr port, which is in network byte order.
func beUint16(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// sockaddr4 is a as the kernel wants it in sendmmsg.
func sockaddr4(a netip.AddrPort) unix.RawSockaddrInet4 {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Addr().As4()}
	b := (*[2]byte)(unsafe.Pointer(&sa.Port))
	b[0], b[1] = byte(a.Port()>>8), byte(a.Port())
	return sa
}

// arrival reads the SCM_TIMESTAMPNS control message (Linux, 64-bit layout).
func arrival(oob []byte) (time.Time, bool) {
	for len(oob) >= 16 {
		l := int(binary.NativeEndian.Uint64(oob))
		level, typ := int32(binary.NativeEndian.Uint32(oob[8:])), int32(binary.NativeEndian.Uint32(oob[12:]))
		if l < 16 || l > len(oob) {
			return time.Time{}, false
		}
		if level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && l >= 32 {
			sec, nsec := int64(binary.NativeEndian.Uint64(oob[16:])), int64(binary.NativeEndian.Uint64(oob[24:]))
			return time.Unix(sec, nsec), true
		}
		oob = oob[(l+7)&^7:]
	}
	return time.Time{}, false
}
