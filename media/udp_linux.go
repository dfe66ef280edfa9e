package media

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSocket is a media socket outside Go's network poller: the call's clock
// polls it, so nothing waits on it and a datagram's arrival wakes no thread.
// Receives take a batch per recvmmsg with the kernel's arrival times
// (SO_TIMESTAMPNS); sends are one non-blocking sendto. It has no lock of its
// own: the Stream never closes it while a send or a drain runs (both happen
// under the stream's locks, which Close takes), so the fd is never reused
// under I/O.
type udpSocket struct {
	fd     int
	closed bool
	v6     bool

	to  netip.AddrPort // the cached destination; senders serialise (the stream's tx lock, RTCP's own)
	sa4 unix.RawSockaddrInet4
	sa6 unix.RawSockaddrInet6
}

func listenUDP(ip netip.Addr, port int) (*udpSocket, error) {
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("media: socket: %w", err)
	}
	var sa unix.Sockaddr
	if ip.Is6() {
		sa = &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	} else {
		sa = &unix.SockaddrInet4{Port: port, Addr: ip.As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))), Err: err}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) // without it, the poll time stands in
	return &udpSocket{fd: fd, v6: ip.Is6()}, nil
}

// reserveFDs makes the process's descriptor table hold n descriptors now,
// while nothing waits on it. The kernel doubles the table when a new
// descriptor does not fit, and in a threaded process each doubling waits for
// an RCU grace period (expand_fdtable), 4–14 ms here, while every other thread
// opening a descriptor waits behind it. Without this, the calls set up while
// the load first climbs past 256, 512, 1,024 and 2,048 sockets stall on it,
// and with them both Ps, since socket(2) does not hand its P over. Capped by
// RLIMIT_NOFILE; best effort.
func reserveFDs(n int) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2 || n < 1 {
		return
	}
	top := min(uint64(n), lim.Cur-1)
	src, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return
	}
	defer unix.Close(src)
	if fd, err := unix.FcntlInt(uintptr(src), unix.F_DUPFD_CLOEXEC, int(top)); err == nil {
		unix.Close(fd) // the table keeps its size
	}
}

// Close is idempotent; no I/O may be in progress.
func (u *udpSocket) Close() error {
	if u.closed {
		return nil
	}
	u.closed = true
	return unix.Close(u.fd)
}

// sendTo sends one datagram; a full socket buffer drops it (an error), it
// never blocks. Callers serialise their sends.
func (u *udpSocket) sendTo(pkt []byte, to netip.AddrPort) error {
	if u.closed {
		return net.ErrClosed
	}
	if len(pkt) == 0 {
		return nil
	}
	if u.to != to {
		a := to.Addr()
		if !u.v6 && !a.Unmap().Is4() {
			return fmt.Errorf("media: IPv4 socket cannot send to %v", to)
		}
		u.to = to
		if u.v6 {
			u.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
			putPort(&u.sa6.Port, to.Port())
		} else {
			u.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
			putPort(&u.sa4.Port, to.Port())
		}
	}
	sa, salen := unsafe.Pointer(&u.sa4), uintptr(unix.SizeofSockaddrInet4)
	if u.v6 {
		sa, salen = unsafe.Pointer(&u.sa6), unix.SizeofSockaddrInet6
	}
	for {
		// The socket never blocks: no need to tell the scheduler of the call.
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(u.fd), uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)),
			unix.MSG_DONTWAIT, uintptr(sa), salen)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// putPort stores a port in a raw sockaddr: network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// rxBatchLen datagrams are taken per recvmmsg: a call's socket rarely holds
// more than one or two packets at its tick, and a backlog drains in a few calls.
const rxBatchLen = 8

// mmsghdr is struct mmsghdr of recvmmsg(2); x/sys/unix does not define it.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// rxBatch is the scratch of one recvmmsg, borrowed from rxBatches for one
// drain, so that calls share a few batches rather than each holding one.
type rxBatch struct {
	msgs  [rxBatchLen]mmsghdr
	iovs  [rxBatchLen]unix.Iovec
	names [rxBatchLen]unix.RawSockaddrInet6
	ctrl  [rxBatchLen][64]byte
	bufs  [rxBatchLen][maxDatagram]byte
}

var ctrlLen = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

var rxBatches = sync.Pool{New: func() any {
	b := new(rxBatch)
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(maxDatagram)
		h := &b.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
		h.Control = &b.ctrl[i][0]
	}
	return b
}}

// drain hands queued datagrams to each, oldest first, at most limit of them,
// each with its arrival time on now's monotonic clock. A clock that polls
// just after a call's packet arrives usually finds exactly the expected
// number: so the first read asks for that many (asking for more costs a
// failing attempt in the kernel), and drain reads on, in batches, only while
// the last it got had waited longer than fresh, the sign of a backlog. It
// returns a socket error other than "nothing queued".
func (u *udpSocket) drain(now time.Time, limit, expect int, fresh time.Duration, each func(pkt []byte, from netip.AddrPort, at time.Time)) error {
	if u.closed {
		return net.ErrClosed
	}
	b := rxBatches.Get().(*rxBatch)
	defer rxBatches.Put(b)
	wall := now.UnixNano()
	vlen := min(max(expect, 1), rxBatchLen)
	for limit > 0 {
		for i := range vlen {
			h := &b.msgs[i].hdr
			h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
			h.SetControllen(ctrlLen)
			h.Flags = 0
		}
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&b.msgs[0])),
			uintptr(vlen), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
		case unix.EAGAIN, unix.EINTR:
			return nil
		default:
			return e
		}
		got := int(n)
		var at time.Time
		for i := range got {
			m := &b.msgs[i]
			size := min(int(m.len), maxDatagram)
			if m.hdr.Flags&unix.MSG_TRUNC != 0 {
				size = 0 // too big to be RTP we can use: counted as malformed
			}
			at = arrivalAt(now, wall, &m.hdr, b.ctrl[i][:])
			each(b.bufs[i][:size], sockaddrPort(&b.names[i]), at)
		}
		limit -= got
		if got < vlen || now.Sub(at) < fresh {
			return nil
		}
		vlen = rxBatchLen
	}
	return nil
}

// arrivalAt is the datagram's kernel timestamp as a time on now's monotonic
// clock; now itself when there is none or it is implausible.
func arrivalAt(now time.Time, wall int64, h *unix.Msghdr, ctrl []byte) time.Time {
	cl := int(h.Controllen)
	if cl < unix.CmsgLen(16) || cl > len(ctrl) {
		return now
	}
	c := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
	if c.Level != unix.SOL_SOCKET || c.Type != unix.SCM_TIMESTAMPNS {
		return now
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
	age := wall - ts.Nano()
	if age <= 0 || age > int64(2*time.Second) {
		return now
	}
	return now.Add(-time.Duration(age))
}

func sockaddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}
