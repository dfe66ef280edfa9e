package main

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rtpPeer is the caller's RTP side, played by the test: it counts what the
// gateway sends (arrival time and payload type) and, while told to, sends
// 20 ms packets back so the gateway's media timeout stays quiet.
type rtpPeer struct {
	conn *net.UDPConn

	mu   sync.Mutex
	got  []rtpArrival
	from netip.AddrPort // the gateway's RTP address, from its first packet
}

type rtpArrival struct {
	at time.Time
	pt uint8
}

func startRTPPeer(t *testing.T) *rtpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	p := &rtpPeer{conn: c}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 12 || buf[0]>>6 != 2 {
				continue
			}
			p.mu.Lock()
			p.got = append(p.got, rtpArrival{at: time.Now(), pt: buf[1] & 0x7f})
			p.from = from
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *rtpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// send sends silence every 20 ms to the gateway while pt() says a payload type
// (-1: send nothing), until stop closes.
func (p *rtpPeer) send(stop <-chan struct{}, pt func() int) {
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	var seq uint16
	var ts uint32
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		to := p.from
		p.mu.Unlock()
		v := pt()
		seq++
		ts += 160
		if !to.IsValid() || v < 0 {
			continue
		}
		pkt[1] = byte(v)
		pkt[2], pkt[3] = byte(seq>>8), byte(seq)
		pkt[4], pkt[5], pkt[6], pkt[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		pkt[8], pkt[9], pkt[10], pkt[11] = 0x12, 0x34, 0x56, 0x78
		silence := byte(0xff) // µ-law
		if v == 8 {
			silence = 0xd5 // A-law
		}
		for i := 12; i < len(pkt); i++ {
			pkt[i] = silence
		}
		p.conn.WriteToUDPAddrPort(pkt, to)
	}
}

func (p *rtpPeer) arrivals() []rtpArrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rtpArrival(nil), p.got...)
}

// Hold, unhold and a codec change by re-INVITE, from sipp: each answer has the
// right direction (sipp checks the SDP), the gateway sends no RTP while held
// (a 3 s gap at the test's socket) and resumes after, in PCMA once the caller
// offers only PCMA; the 2 s media timeout does not fire while the caller,
// on hold, sends nothing.
func TestHoldUnholdReinvite(t *testing.T) {
	g := startGateway(t, gwOptions{mediaTimeout: "2s"})
	peer := startRTPPeer(t)
	stop := make(chan struct{})
	defer close(stop)
	go peer.send(stop, func() int {
		l := g.logs.String()
		if strings.Count(l, "held=true") > strings.Count(l, "held=false") {
			return -1 // on hold: the caller sends nothing
		}
		if strings.Contains(l, `msg="media changed" codec=PCMA`) {
			return 8
		}
		return 0
	})

	sf, err := filepath.Abs("testdata/hold.xml")
	must(t, err)
	out, err := runTool(t, 40*time.Second, sippDir(t), "sipp", g.sipAddr(), "-sf", sf, "-s", "echo", "-m", "1",
		"-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-key", "rtpport", fmt.Sprint(peer.port()),
		"-nostdin", "-timeout", "30s", "-timeout_error")
	if err != nil {
		t.Fatalf("sipp (hold, inactive, unhold, PCMA; directions checked): %v\n%s", err, tail(out))
	}
	time.Sleep(100 * time.Millisecond)
	got := peer.arrivals()
	if len(got) < 100 {
		t.Fatalf("the gateway sent %d RTP packets, want about 300", len(got))
	}
	// The longest silence is the hold (sendonly then inactive: 3 s).
	gapAt, gap := 0, time.Duration(0)
	for i := 1; i < len(got); i++ {
		if d := got[i].at.Sub(got[i-1].at); d > gap {
			gapAt, gap = i, d
		}
	}
	before, after := got[:gapAt], got[gapAt:]
	count := func(as []rtpArrival, pt uint8) (n int) {
		for _, a := range as {
			if a.pt == pt {
				n++
			}
		}
		return n
	}
	t.Logf("RTP from the gateway: %d packets before hold, a %v gap, %d after (%d PCMU, %d PCMA)",
		len(before), gap.Round(time.Millisecond), len(after), count(after, 0), count(after, 8))
	if gap < 2500*time.Millisecond || gap > 4*time.Second {
		t.Errorf("longest gap in the gateway's RTP is %v, want the ~3 s of hold", gap)
	}
	if len(before) < 50 || count(before, 0) != len(before) {
		t.Errorf("before hold: %d packets, %d PCMU; want ~75 PCMU", len(before), count(before, 0))
	}
	if count(after, 0) < 40 || count(after, 8) < 40 {
		t.Errorf("after unhold: %d PCMU then %d PCMA packets, want ~75 of each", count(after, 0), count(after, 8))
	}
	if last := after[len(after)-1]; last.pt != 8 {
		t.Errorf("last packet has payload type %d, want PCMA (8) after the codec change", last.pt)
	}
	noRaceReports(t, g)
	if l := g.logs.String(); strings.Contains(l, "rtp timeout") {
		t.Errorf("the media timeout fired during hold")
	}
	waitFor(t, 5*time.Second, "the caller's hang-up in the log", func() bool {
		l := g.logs.String()
		return strings.Contains(l, `msg="call ended"`) && strings.Contains(l, "by=caller")
	})
}
