package media

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
)

// PortPool hands out even UDP ports in [min, max] on one IP, one per Stream (the odd
// port above each stays free for RTCP). Released ports go to the back of the queue so
// that a port rests before reuse and late packets of an old call do not reach a new
// one. It is safe for concurrent use.
type PortPool struct {
	ip       netip.Addr
	min, max int

	mu    sync.Mutex
	free  []int // FIFO of ports not held by a Stream
	inUse int
}

// fdSlack is the descriptors a gateway holds besides its calls' (listeners,
// logs, the CDR store).
const fdSlack = 256

// NewPortPool returns a pool of the even ports in [min, max] on ip.
func NewPortPool(ip netip.Addr, min, max int) (*PortPool, error) {
	if !ip.IsValid() {
		return nil, fmt.Errorf("%w: invalid IP", ErrPortRange)
	}
	lo := min + min&1
	if min < 1 || max > 65535 || lo > max {
		return nil, fmt.Errorf("%w: [%d, %d] holds no even port in 2..65534", ErrPortRange, min, max)
	}
	p := &PortPool{ip: ip.Unmap(), min: min, max: max}
	for port := lo; port <= max; port += 2 {
		p.free = append(p.free, port)
	}
	// Start at a random place in the range: a restarted process (or two test
	// phones started together) does not take the ports its predecessor just used.
	k := rand.IntN(len(p.free))
	p.free = append(p.free[k:], p.free[:k]...)
	// Room for every port's RTP and RTCP sockets and a connection to a bot
	// per call, so the descriptor table never grows under load (udp_linux.go).
	reserveFDs(3*len(p.free) + fdSlack)
	return p, nil
}

// InUse is the number of ports held by open Streams; tests use it to find leaks.
func (p *PortPool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// Size is the number of ports the pool manages.
func (p *PortPool) Size() int { return (p.max-(p.min+p.min&1))/2 + 1 }

// bind takes the first port in the queue that binds. A port that fails (another
// process holds it) goes to the back and the next is tried.
func (p *PortPool) bind() (*udpSocket, int, error) {
	p.mu.Lock()
	tries := len(p.free)
	p.mu.Unlock()
	var lastErr error
	for range tries {
		p.mu.Lock()
		if len(p.free) == 0 {
			p.mu.Unlock()
			break
		}
		port := p.free[0]
		p.free = p.free[1:]
		p.inUse++ // held while we try, so InUse never undercounts
		p.mu.Unlock()

		conn, err := listenUDP(p.ip, port)
		if err == nil {
			return conn, port, nil
		}
		lastErr = err
		p.release(port)
	}
	if lastErr != nil {
		return nil, 0, fmt.Errorf("%w in [%d, %d] on %v (last: %v)", ErrNoPorts, p.min, p.max, p.ip, lastErr)
	}
	return nil, 0, fmt.Errorf("%w in [%d, %d] on %v", ErrNoPorts, p.min, p.max, p.ip)
}

func (p *PortPool) release(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, port)
	p.inUse--
}
