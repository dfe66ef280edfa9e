package sip

import (
	"testing"
	"time"
)

// sipgo leaves an answered INVITE transaction's Timer L armed for 64*T1
// after the transaction ends, and with it the transaction in memory. Once the
// ACK is in and the transaction is let go, the timer is stopped (timerl.go),
// over UDP (after T1) and TCP (at once).
func TestTimerLStoppedAfterAck(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			calls := make(chan *InboundCall, 1)
			answered := make(chan error, 1)
			s := testServer(t, func(c *InboundCall) {
				calls <- c
				answered <- c.Answer(rtpAddr)
				<-c.Context().Done()
			}, func(cfg *Config) { cfg.T1 = 50 * time.Millisecond })
			p := dialPeer(t, network, s.Addr(network))
			callID := "timer-l-" + network
			p.send(p.invite(s.Addr(network), callID, "tl1", pcmuOffer))
			ok := p.expectResponse(200, 2*time.Second)
			c := <-calls
			p.send(p.ack(s.Addr(network), callID, toTag(ok), 1))
			select {
			case err := <-answered:
				if err != nil {
					t.Fatalf("Answer: %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Answer did not return on the ACK")
			}
			timerL := sipgoTimerL(c.tx) // armed by the 200 that Answer sent
			if timerL == nil {
				t.Fatal("no Timer L on the answered INVITE's transaction: sipgo changed, see timerl.go")
			}
			time.Sleep(time.Second) // the release comes T1 after the ACK
			if timerL.Stop() {
				t.Fatal("Timer L still armed after the transaction was let go: it holds the transaction for 64*T1")
			}
		})
	}
}
