package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// The gateway-added latency of a Twilio-protocol session over a real
// loopback WebSocket, per 20 ms frame: caller frame handed to the session
// (as the call's clock does once it leaves the jitter buffer) → the bot has
// the media message; and the bot's media message → its samples queued for
// playout (Controls.Play), here polled back to back (the call's clock polls
// once a tick, just before that tick's playout). Reported as p50/p99 in µs.
//
//	go test -run '^$' -bench Latency -benchmem ./agent

func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkLatencyTwilioCallerToBot(b *testing.B) {
	bt := newBot(b)
	s, err := Twilio{URL: bt.url(), ConnectTimeout: time.Second}.Start(context.Background(), Call{}, newLiveControls())
	if err != nil {
		b.Fatal(err)
	}
	c := <-bt.conns
	defer c.CloseNow()
	defer s.Close()
	ctx := context.Background()
	c.Read(ctx) // connected
	c.Read(ctx) // start
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		s.Audio(frame, 8000)
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportPercentiles(b, lat)
}

func BenchmarkLatencyTwilioBotToPlayout(b *testing.B) {
	bt := newBot(b)
	ctl := &timedControls{liveControls: newLiveControls(), played: make(chan time.Time, 1)}
	s, err := Twilio{URL: bt.url(), ConnectTimeout: time.Second}.Start(context.Background(), Call{}, ctl)
	if err != nil {
		b.Fatal(err)
	}
	c := <-bt.conns
	defer c.CloseNow()
	defer s.Close()
	ctx := context.Background()
	c.Read(ctx)
	c.Read(ctx)
	w := sessionWS(s)
	payload := make([]byte, 160)
	msg, _ := json.Marshal(map[string]any{"event": "media", "streamSid": "MZ0", "media": map[string]any{"payload": base64.StdEncoding.EncodeToString(payload)}})
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
		for played := false; !played; { // the clock's poll, here as often as it takes
			w.poll()
			select {
			case t1 := <-ctl.played:
				lat = append(lat, t1.Sub(t0))
				played = true
			default:
			}
		}
	}
	reportPercentiles(b, lat)
}

// timedControls notes when audio is queued for playout.
type timedControls struct {
	*liveControls
	played chan time.Time
}

func (c *timedControls) Play([]int16, int) { c.played <- time.Now() }
