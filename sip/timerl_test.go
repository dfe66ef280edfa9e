package sip

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
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

// A caller that sends its BYE right behind its ACK can have both handled
// while Answer is still inside Respond, where sipgo arms Timer L after the
// 2xx is on the wire: the transaction is then let go before the timer exists.
// Whichever of the two comes second stops it (InboundCall.letGo); many calls
// at once make the overtaking likely, and -race sees an unlocked read.
func TestTimerLStoppedWhenByeOvertakesAnswer(t *testing.T) {
	t.Parallel()
	const n = 40
	var mu sync.Mutex
	calls := map[string]*InboundCall{}
	s := testServer(t, func(c *InboundCall) {
		mu.Lock()
		calls[c.CallID()] = c
		mu.Unlock()
		_ = c.Answer(rtpAddr) // ErrCallEnded when the BYE wins
		<-c.Context().Done()
	}, func(cfg *Config) { cfg.T1 = 50 * time.Millisecond })
	addr := s.Addr("udp")
	peers := make([]*peer, n)
	for i := range peers {
		peers[i] = dialPeer(t, "udp", addr)
		peers[i].send(peers[i].invite(addr, fmt.Sprintf("overtake-%d", i), "ov1", pcmuOffer))
	}
	for i, p := range peers {
		callID := fmt.Sprintf("overtake-%d", i)
		tag := toTag(p.expectResponse(200, 2*time.Second))
		p.send(p.ack(addr, callID, tag, 1))
		p.send(p.bye(addr, callID, tag, 2))
	}
	for _, p := range peers {
		// A retransmitted 2xx to the INVITE may come before the BYE's 200.
		for p.expectResponse(200, 2*time.Second).CSeq().MethodName != sip.BYE {
		}
	}
	time.Sleep(300 * time.Millisecond) // the release comes T1 after the ACK
	mu.Lock()
	defer mu.Unlock()
	armed := 0
	for i := range n {
		c := calls[fmt.Sprintf("overtake-%d", i)]
		if c == nil {
			t.Fatalf("call %d never reached the handler", i)
		}
		timerL := sipgoTimerL(c.tx)
		if timerL == nil {
			t.Fatalf("call %d: no Timer L on the answered INVITE's transaction", i)
		}
		if timerL.Stop() {
			armed++
		}
	}
	if armed > 0 {
		t.Errorf("Timer L still armed on %d of %d calls after their transactions were let go", armed, n)
	}
}

// A re-INVITE's transaction is let go once its 2xx is ACKed, its Timer L
// stopped, as the INVITE's is: a session refreshed every few minutes must not
// hold one for 64*T1 each time.
func TestTimerLStoppedAfterReinviteAck(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, func(c *InboundCall) {
				_ = c.Answer(rtpAddr)
				<-c.Context().Done()
			}, func(cfg *Config) { cfg.T1 = 50 * time.Millisecond })
			reinvites := make(chan sip.ServerTransaction, 1)
			s.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
				if hasToTag(req) {
					reinvites <- tx
				}
				s.safe(s.onInvite)(req, tx)
			})
			serveTest(t, s)
			addr := s.Addr(network)
			p := dialPeer(t, network, addr)
			callID := "timer-l-reinvite-" + network
			p.send(p.invite(addr, callID, "tr1", pcmuOffer))
			tag := toTag(p.expectResponse(200, 2*time.Second))
			p.send(p.ack(addr, callID, tag, 1))
			reinvite := strings.NewReplacer(
				"CSeq: 1 INVITE", "CSeq: 2 INVITE",
				fmt.Sprintf("To: <sip:1000@%s>", addr), fmt.Sprintf("To: <sip:1000@%s>;tag=%s", addr, tag),
			).Replace(p.invite(addr, callID, "tr2", pcmuOffer))
			p.send(reinvite)
			for p.expectResponse(200, 2*time.Second).CSeq().SeqNo != 2 {
			}
			p.send(p.ack(addr, callID, tag, 2))
			tx := <-reinvites
			time.Sleep(500 * time.Millisecond) // the release comes T1 after the ACK
			timerL := sipgoTimerL(tx)
			if timerL == nil {
				t.Fatal("no Timer L on the answered re-INVITE's transaction: sipgo changed, see timerl.go")
			}
			if timerL.Stop() {
				t.Error("the re-INVITE's Timer L still armed after its ACK: it holds the transaction for 64*T1")
			}
			p.send(p.bye(addr, callID, tag, 3))
			for p.expectResponse(200, 2*time.Second).CSeq().MethodName != sip.BYE {
			}
		})
	}
}
