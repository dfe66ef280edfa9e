//go:build !linux

package media

import (
	"net"
	"net/netip"
	"syscall"
	"time"
)

// udpSocket is a media socket the call's clock polls; elsewhere than linux it
// is a net.UDPConn read without blocking, one datagram per system call, with
// the poll time as arrival (udp_linux.go batches and has kernel timestamps).
type udpSocket struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	buf  []byte
}

// reserveFDs is linux's remedy for descriptor table growth (udp_linux.go).
func reserveFDs(int) {}

func listenUDP(ip netip.Addr, port int) (*udpSocket, error) {
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &udpSocket{conn: c, rc: rc, buf: make([]byte, maxDatagram)}, nil
}

func (u *udpSocket) Close() error { return u.conn.Close() }

func (u *udpSocket) sendTo(pkt []byte, to netip.AddrPort) error {
	_, err := u.conn.WriteToUDPAddrPort(pkt, to)
	return err
}

func (u *udpSocket) drain(now time.Time, limit, _ int, _ time.Duration, each func(pkt []byte, from netip.AddrPort, at time.Time)) error {
	for ; limit > 0; limit-- {
		var n int
		var from syscall.Sockaddr
		var rerr error
		if err := u.rc.Read(func(fd uintptr) bool {
			n, from, rerr = syscall.Recvfrom(int(fd), u.buf, syscall.MSG_DONTWAIT)
			return true
		}); err != nil {
			return err
		}
		if rerr == syscall.EAGAIN || rerr == syscall.EINTR {
			return nil
		}
		if rerr != nil {
			return rerr
		}
		var a netip.AddrPort
		switch sa := from.(type) {
		case *syscall.SockaddrInet4:
			a = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *syscall.SockaddrInet6:
			a = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
		}
		each(u.buf[:n], a, now)
	}
	return nil
}
