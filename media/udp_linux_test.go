package media

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendTo reaches IPv4 and IPv6 peers, and a v4-mapped one from a dual-stack
// socket, with the datagram whole and our port as its source; a change of
// destination is followed at once; an IPv6 peer is refused on an IPv4 socket.
func TestUDPSendTo(t *testing.T) {
	cases := []struct {
		name     string
		local    string // our socket's address
		peer     string // where the peer listens
		peerSeen string // the address we send to, as the peer is reached
	}{
		{"ipv4", "127.0.0.1", "127.0.0.1:0", "127.0.0.1"},
		{"ipv6", "::1", "[::1]:0", "::1"},
		{"v4-mapped on dual stack", "::", "127.0.0.1:0", "::ffff:127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := listenUDP(netip.MustParseAddr(tc.local), 0)
			if err != nil {
				t.Skipf("no %s socket here: %v", tc.local, err)
			}
			defer u.Close()
			var peers [2]*net.UDPConn
			for i := range peers {
				pc, err := net.ListenPacket("udp", tc.peer)
				if err != nil {
					t.Skipf("no peer on %s: %v", tc.peer, err)
				}
				defer pc.Close()
				peers[i] = pc.(*net.UDPConn)
			}
			for round, pc := range []*net.UDPConn{peers[0], peers[1], peers[0]} {
				to := netip.AddrPortFrom(netip.MustParseAddr(tc.peerSeen), uint16(pc.LocalAddr().(*net.UDPAddr).Port))
				msg := []byte{0x80, 0, byte(round), 1, 2, 3}
				if err := u.sendTo(msg, to); err != nil {
					t.Fatalf("round %d to %v: %v", round, to, err)
				}
				pc.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 64)
				n, from, err := pc.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("round %d: the peer at %v got nothing: %v", round, to, err)
				}
				if string(buf[:n]) != string(msg) {
					t.Fatalf("round %d: got % x, sent % x", round, buf[:n], msg)
				}
				if port := localPort(t, u); from.Port() != port {
					t.Fatalf("round %d: source port %d, want ours %d", round, from.Port(), port)
				}
			}
		})
	}
	u, err := listenUDP(netip.MustParseAddr("127.0.0.1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.sendTo([]byte{0x80}, netip.MustParseAddrPort("[::1]:9")); err == nil {
		t.Fatal("an IPv4 socket sent to an IPv6 address")
	}
}

func localPort(t *testing.T, u *udpSocket) uint16 {
	t.Helper()
	sa, err := unix.Getsockname(u.fd)
	if err != nil {
		t.Fatal(err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(a.Port)
	case *unix.SockaddrInet6:
		return uint16(a.Port)
	}
	t.Fatalf("socket address %T", sa)
	return 0
}

// A new pool grows the process's descriptor table to hold all its sockets at
// once, so the table's doubling (an RCU grace period every other thread
// opening a descriptor waits for) never happens while calls are set up.
func TestPortPoolReservesDescriptors(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	before := fdTableSize(t)
	p, err := NewPortPool(netip.MustParseAddr("127.0.0.1"), 2, 65535)
	if err != nil {
		t.Fatal(err)
	}
	want := min(3*p.Size()+fdSlack, int(min(lim.Cur, 1<<30))-1) + 1 // descriptor numbers 0..top
	if before >= want {
		t.Skipf("the table already holds %d descriptors", before)
	}
	if got := fdTableSize(t); got < want {
		t.Fatalf("descriptor table holds %d after the pool, want at least %d (before: %d)", got, want, before)
	}
}

// fdTableSize is the size of this process's descriptor table (FDSize).
func fdTableSize(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "FDSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no FDSize in /proc/self/status")
	return 0
}
