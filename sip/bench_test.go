package sip

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// One whole call per op over UDP loopback, as sipp's uac makes it: INVITE,
// 100 and 200, ACK, BYE and its 200; the handler answers and waits for the
// end. Measures the server's per-call setup and teardown (the client side is
// a raw socket, cheap beside it). Compare allocs/op: the time is mostly the
// loopback round trips.
func BenchmarkCallSetupUDP(b *testing.B) {
	s := testServer(b, func(c *InboundCall) {
		if err := c.Answer(rtpAddr); err != nil {
			return
		}
		<-c.Context().Done()
	}, func(c *Config) { c.Listen, c.DropScanners = c.Listen[:1], true }) // as the gateway runs
	addr := s.Addr("udp")
	p := dialPeer(b, "udp", addr)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		callID := fmt.Sprintf("bench-%d", i)
		p.send(p.invite(addr, callID, fmt.Sprintf("inv%d", i), pcmuOffer))
		ok := p.expectResponse(200, 2*time.Second)
		tag := toTag(ok)
		p.send(p.ack(addr, callID, tag, 1))
		p.send(p.bye(addr, callID, tag, 2))
		p.expectResponse(200, 2*time.Second)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
}

// cpuTime is the process's user+system CPU so far (server and client both).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
