package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func TestNewPortPoolRejects(t *testing.T) {
	for _, r := range [][2]int{{0, 100}, {5001, 5001}, {6000, 5000}, {65534, 65536}, {-2, 10}} {
		if _, err := NewPortPool(loopback, r[0], r[1]); !errors.Is(err, ErrPortRange) {
			t.Errorf("NewPortPool(%d, %d): err = %v, want ErrPortRange", r[0], r[1], err)
		}
	}
	if _, err := NewPortPool(netip.Addr{}, 5000, 5010); !errors.Is(err, ErrPortRange) {
		t.Errorf("invalid IP: err = %v, want ErrPortRange", err)
	}
	p, err := NewPortPool(loopback, 5001, 5007) // odd bounds: 5002, 5004, 5006
	if err != nil || p.Size() != 3 {
		t.Errorf("NewPortPool(5001, 5007): size %v, err %v; want 3 ports", p.Size(), err)
	}
}

func TestPortPoolExhaustionAndReturn(t *testing.T) {
	pool, err := NewPortPool(loopback, 47100, 47106) // 4 even ports
	if err != nil {
		t.Fatal(err)
	}
	var streams []*Stream
	for {
		s, err := pool.Open(StreamConfig{Codec: PCMU})
		if err != nil {
			if !errors.Is(err, ErrNoPorts) {
				t.Fatalf("Open: err = %v, want ErrNoPorts", err)
			}
			break
		}
		if p := s.LocalAddr().Port(); p%2 != 0 || p < 47100 || p > 47106 {
			t.Errorf("port %d is not an even port in range", p)
		}
		streams = append(streams, s)
		if len(streams) > 4 {
			t.Fatal("opened more streams than the pool has ports")
		}
	}
	if len(streams) == 0 {
		t.Skip("every port in the test range is taken by another process")
	}
	if got := pool.InUse(); got != len(streams) {
		t.Errorf("InUse = %d with %d streams open", got, len(streams))
	}
	streams[0].Close()
	streams[0].Close() // idempotent: the port must not come back twice
	if got := pool.InUse(); got != len(streams)-1 {
		t.Errorf("InUse after one Close = %d, want %d", got, len(streams)-1)
	}
	s, err := pool.Open(StreamConfig{Codec: PCMA})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if s.LocalAddr() != streams[0].LocalAddr() {
		t.Errorf("reopened on %v, want the freed %v", s.LocalAddr(), streams[0].LocalAddr())
	}
	if _, err := pool.Open(StreamConfig{Codec: PCMU}); !errors.Is(err, ErrNoPorts) {
		t.Errorf("Open on a full pool: err = %v, want ErrNoPorts", err)
	}
	s.Close()
	for _, s := range streams {
		s.Close()
	}
	if got := pool.InUse(); got != 0 {
		t.Errorf("InUse after closing everything = %d", got)
	}
}

func TestPortPoolSkipsBusyPort(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 47120})
	if err != nil {
		t.Skipf("cannot hold port 47120 for the test: %v", err)
	}
	defer busy.Close()
	pool, err := NewPortPool(loopback, 47120, 47122)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pool.Open(StreamConfig{Codec: PCMU})
	if err != nil {
		t.Fatalf("Open with the first port busy: %v", err)
	}
	if s.LocalAddr().Port() != 47122 {
		t.Errorf("got port %d, want 47122", s.LocalAddr().Port())
	}
	if _, err := pool.Open(StreamConfig{Codec: PCMU}); !errors.Is(err, ErrNoPorts) {
		t.Errorf("second Open: err = %v, want ErrNoPorts", err)
	}
	s.Close()
	if pool.InUse() != 0 {
		t.Errorf("InUse = %d after Close", pool.InUse())
	}
}

func TestPortPoolConcurrent(t *testing.T) {
	pool, err := NewPortPool(loopback, 47200, 47399)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10 {
				s, err := pool.Open(StreamConfig{Codec: PCMU})
				if err != nil {
					t.Error(err)
					return
				}
				s.Close()
			}
		})
	}
	wg.Wait()
	if pool.InUse() != 0 {
		t.Errorf("InUse = %d after all streams closed", pool.InUse())
	}
}
