package webroom

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestHub(t testing.TB) *Hub {
	t.Helper()
	h, err := NewHub(Config{ICEIP: netip.MustParseAddr("127.0.0.1"), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// Each listener hears the int32 sum of the others, clipped, never itself.
func TestMixExcludesOwnVoiceAndClips(t *testing.T) {
	r := newRoom("t", quietLog())
	heard := map[string]int16{}
	add := func(id string, v int16) {
		p := newParticipant(ParticipantInfo{ID: id}, quietLog())
		p.send = func(mix []int16) {
			for _, s := range mix[1:] {
				if s != mix[0] {
					t.Fatalf("%s: uneven mix", id)
				}
			}
			heard[id] = mix[0]
		}
		if v != 0 {
			for range primeFrames {
				p.in.push(frameOf(v))
			}
		}
		r.add(p)
	}
	add("a", 1000)
	add("b", 2000)
	add("c", 30000)
	add("quiet", 0) // no input: contributes nothing, still hears
	add("d", -32000)
	r.mix()
	want := map[string]int16{
		"a":     clip(2000 + 30000 - 32000),
		"b":     clip(1000 + 30000 - 32000),
		"c":     clip(1000 + 2000 - 32000),
		"quiet": clip(1000 + 2000 + 30000 - 32000),
		"d":     32767, // 33000 clipped
	}
	for id, w := range want {
		if heard[id] != w {
			t.Errorf("%s heard %d, want %d", id, heard[id], w)
		}
	}
	if heard["c"] != -29000 {
		t.Errorf("c heard %d", heard["c"])
	}
}

// controls is the call side of a phone participant, as the bridge's session
// would be: it keeps what the room plays and notes a hang-up.
type controls struct {
	mu     sync.Mutex
	played []int16
	rate   int
	hungup chan string
}

func newControls() *controls { return &controls{hungup: make(chan string, 1)} }

func (c *controls) Play(s []int16, rate int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.played = append(c.played, s...)
	c.rate = rate
}
func (c *controls) heard() ([]int16, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int16(nil), c.played...), c.rate
}
func (c *controls) Mark(string)           {}
func (c *controls) Clear()                {}
func (c *controls) Queued() time.Duration { return 0 }
func (c *controls) SendDTMF(string)       {}
func (c *controls) Transfer(string)       {}
func (c *controls) Hangup(reason string) {
	select {
	case c.hungup <- reason:
	default:
	}
}

// feed sends a tone into a session on a real 20 ms clock until ctx ends,
// catching up missed ticks as the bridge's call clock does.
func feed(ctx context.Context, s agent.Session, freq float64, rate int) {
	tone := pcm.Tone(freq, rate, rate*10, 0.3)
	n := pcm.FrameSamples(rate)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	start, sent, i := time.Now(), 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for due := int(time.Since(start) / (20 * time.Millisecond)); sent < due; sent++ {
			s.Audio(tone[i:i+n], rate)
			i = (i + n) % (len(tone) - n)
		}
	}
}

// lastDominant is the dominant frequency of the last d of s (a short span:
// DominantFrequency is a plain DFT).
func lastDominant(s []int16, rate int, d time.Duration) float64 {
	n := int(d.Seconds() * float64(rate))
	if len(s) < n {
		return 0
	}
	return pcm.DominantFrequency(s[len(s)-n:], rate)
}

func near(f, want float64) bool { return math.Abs(f-want) <= want*0.02 }

// Two callers in one room hear each other through the room's clock; hanging up
// leaves the room, and the last one out closes it.
func TestPhonesHearEachOther(t *testing.T) {
	h := newTestHub(t)
	a := h.Agent(func(c agent.Call) (string, error) { return "lobby", nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c1, c2 := newControls(), newControls()
	s1, err := a.Start(ctx, agent.Call{ID: "call-1", From: "alice"}, c1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := a.Start(ctx, agent.Call{ID: "call-2", From: "bob"}, c2)
	if err != nil {
		t.Fatal(err)
	}
	go feed(ctx, s1, 440, 8000)   // G.711 rate
	go feed(ctx, s2, 1000, 16000) // G.722 rate
	time.Sleep(1500 * time.Millisecond)

	heard1, rate1 := c1.heard()
	heard2, _ := c2.heard()
	if rate1 != Rate {
		t.Fatalf("played at %d Hz, want %d", rate1, Rate)
	}
	if f := lastDominant(heard1, Rate, 200*time.Millisecond); !near(f, 1000) {
		t.Errorf("alice hears %.0f Hz, want 1000 (bob)", f)
	}
	if f := lastDominant(heard2, Rate, 200*time.Millisecond); !near(f, 440) {
		t.Errorf("bob hears %.0f Hz, want 440 (alice)", f)
	}
	ps, err := h.Participants("lobby")
	if err != nil || len(ps) != 2 || ps[0].CallID != "call-1" || ps[1].Kind != KindPhone {
		t.Fatalf("participants: %+v, %v", ps, err)
	}
	t.Logf("inputs: alice %+v, bob %+v", ps[0].Input, ps[1].Input)

	s1.Close()
	if ps, _ := h.Participants("lobby"); len(ps) != 1 || ps[0].Name != "bob" {
		t.Fatalf("after alice hangs up: %+v", ps)
	}
	s2.Close()
	if _, err := h.Participants("lobby"); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("after both hang up: %v, want the room gone", err)
	}
}

// Deleting a room hangs up its callers.
func TestDeleteHangsUp(t *testing.T) {
	h := newTestHub(t)
	a := h.Agent(func(c agent.Call) (string, error) { return "doomed", nil })
	c := newControls()
	s, err := a.Start(context.Background(), agent.Call{ID: "x"}, c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := h.Delete("doomed"); err != nil {
		t.Fatal(err)
	}
	select {
	case why := <-c.hungup:
		if why != "room deleted" {
			t.Fatalf("hang-up reason %q", why)
		}
	case <-time.After(time.Second):
		t.Fatal("caller not hung up")
	}
	if err := h.Delete("doomed"); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestBadRoomName(t *testing.T) {
	h := newTestHub(t)
	for _, name := range []string{"", "../x", "a b", "-x", string(make([]byte, 65))} {
		a := h.Agent(func(agent.Call) (string, error) { return name, nil })
		if _, err := a.Start(context.Background(), agent.Call{}, newControls()); !errors.Is(err, ErrBadName) {
			t.Errorf("%q: %v, want ErrBadName", name, err)
		}
	}
}

// One tick of a four-party room allocates nothing.
func BenchmarkMix(b *testing.B) {
	r := newRoom("bench", quietLog())
	for range 4 {
		p := newParticipant(ParticipantInfo{}, quietLog())
		p.send = func([]int16) {}
		r.add(p)
	}
	f := frameOf(100)
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range r.parts {
			p.in.push(f)
		}
		r.mix()
	}
}

// A caller's 8 kHz frame into the room (resampled to 48 kHz, queued) allocates nothing.
func BenchmarkPhoneAudio(b *testing.B) {
	p := newParticipant(ParticipantInfo{}, quietLog())
	s := &phoneSession{p: p, framer: newFramer()}
	frame := pcm.Tone(440, 8000, 160, 0.3)
	dst := make([]int16, FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		s.Audio(frame, 8000)
		p.in.pop(dst)
	}
}
