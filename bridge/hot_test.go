package bridge

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/warm"
)

// The clock asks an entry for its memory after the first frame, then every
// hotEvery frames, and keeps at most hotMax spans of it.
func TestClockEntryHotRefresh(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var calls int
	buf := make([]byte, 64)
	e := &clockEntry{tick: func(time.Time) {}, next: t0}
	e.hotFn = func(dst []warm.Span) []warm.Span {
		calls++
		for range hotMax + 5 {
			dst = append(dst, warm.Slice(buf, 64))
		}
		return dst
	}
	for i := range 3*hotEvery + 1 {
		e.run(t0.Add(time.Duration(i) * 20 * time.Millisecond))
	}
	if calls != 4 {
		t.Errorf("hotFn called %d times over %d frames, want 4 (the first frame, then every %d)", calls, 3*hotEvery+1, hotEvery)
	}
	if e.hotLen != hotMax || e.hot[0].P != unsafe.Pointer(&buf[0]) {
		t.Errorf("kept %d spans (first %p), want %d of %p", e.hotLen, e.hot[0].P, hotMax, &buf[0])
	}
	e.warm()
}

// What a call's frame touches is what the clock warms: the session and its
// buffers, the RTP stream, the chain and the agent the chain runs.
func TestSessionHotSpans(t *testing.T) {
	pool, err := media.NewPortPool(netip.MustParseAddr("127.0.0.1"), 43360, 43369)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := pool.Open(media.StreamConfig{Codec: media.PCMU})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	s := newSession(&firstRTP{AudioStream: stream, packets: func() uint64 { return 0 }}, slog.New(slog.DiscardHandler))
	n := 160
	s.in, s.out = make([]int16, n), make([]int16, n)
	c := &chain{steps: []step{{agent: agent.Echo{}}}}
	as, err := c.Start(context.Background(), agent.Call{}, s)
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	s.as = as
	cs := as.(*chainSession)
	echo := warm.Data(cs.cur.Load().s, 1).P

	spans := s.hotSpans(nil)
	for name, p := range map[string]unsafe.Pointer{
		"session":             unsafe.Pointer(s),
		"frame from caller":   unsafe.Pointer(&s.in[n-1]),
		"playout queue":       unsafe.Pointer(s.queue),
		"playout ring":        unsafe.Pointer(&s.queue.buf[0]),
		"RTP stream":          unsafe.Pointer(stream),
		"chain":               unsafe.Pointer(cs),
		"echo session":        echo,
		"switch channel":      *(*unsafe.Pointer)(unsafe.Pointer(&s.switchTo)),
		"first-packet timing": unsafe.Pointer(s.stream.(*firstRTP)),
	} {
		if !warm.Covers(spans, p) {
			t.Errorf("the %s is not in the session's hot spans", name)
		}
	}
	if len(spans) > hotMax {
		t.Errorf("%d spans, more than the %d an entry keeps", len(spans), hotMax)
	}
}
