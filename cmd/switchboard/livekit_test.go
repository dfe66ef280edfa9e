package main

// Phone callers in LiveKit rooms, end to end: a real livekit-server (dev mode,
// in a network namespace of the test's own), the real switchboard binary, a
// softphone or an in-process SIP caller, and LiveKit participants written
// with server-sdk-go in this process.

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	webrtcmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/switchboard-voip/switchboard/bridge"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/opus"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

const lkDialplan = `routes:
  - name: livekit
    match: { to: "~^room-" }
    target:
      type: room
      room:
        livekit:
          url: ` + lkURL + `
          api_key: ` + lkAPIKey + `
          room: "{{.To}}"
          identity: "phone-{{.From}}"
          name: "Caller {{.From}}"
`

func TestLiveKitRoom(t *testing.T) {
	if !inLiveKitNetns(t, "TestLiveKitRoom", 110*time.Second) {
		return
	}
	startLiveKit(t)
	lksdk.SetLogger(protoLogger.GetDiscardLogger()) // the participants' WebRTC chatter
	t.Setenv("LIVEKIT_API_SECRET", lkAPISecret)
	g := startGateway(t, gwOptions{dialplan: lkDialplan})
	rooms := lksdk.NewRoomServiceClient("http://"+lkIP+":7880", lkAPIKey, lkAPISecret)

	// baresip dials into a room where a participant plays 440 Hz: it hears
	// 440 Hz, and the participant hears baresip's 1 kHz.
	t.Run("softphone and participant hear each other", func(t *testing.T) {
		a := joinPeer(t, "room-tone", "tone-440", 440)
		a.on.Store(true)
		tone := filepath.Join(t.TempDir(), "1k.wav")
		writeTone(t, tone, 1000, 8000, 5*time.Second)
		heard := baresipCall(t, "sip:room-tone@"+g.sipAddr(), "PCMU", tone, 5)
		checkTone(t, heard, 440, 2*time.Second)
		got, _ := a.received()
		span := toneSpan(got, 48000)
		if d := time.Duration(len(span)) * time.Second / 48000; d < 2*time.Second {
			t.Fatalf("participant heard %v of the caller, want ≥ 2 s", d)
		}
		if f := pcm.DominantFrequency(span, 48000); math.Abs(f-1000) > 20 {
			t.Fatalf("participant heard %.0f Hz, want 1000 Hz", f)
		}
		t.Logf("participant heard %v of %.0f Hz from the caller", time.Duration(len(span))*time.Second/48000, pcm.DominantFrequency(span, 48000))
	})

	// An in-process caller measures the latency both ways, hears two
	// participants at once and then one again, and its hang-up takes its
	// participant out of the room.
	t.Run("latency, mixing, hang-up", func(t *testing.T) {
		const room = "room-mix"
		a := joinPeer(t, room, "tone-440", 440)
		rec := &recorder{}
		silence := time.Second
		play := append(make([]int16, int(silence.Seconds()*8000)), pcm.Tone(1000, 8000, 6*8000, 0.3)...)
		done := make(chan bridge.DialResult, 1)
		go func() { done <- dial(t, g, room, play, rec, 8*time.Second) }()

		waitFor(t, 10*time.Second, "the caller's track at the participant", a.subscribed)
		checkCallerAttributes(t, rooms, room)
		time.Sleep(500 * time.Millisecond)
		a.on.Store(true)
		time.Sleep(1500 * time.Millisecond)
		b := joinPeer(t, room, "tone-660", 660)
		b.on.Store(true)
		time.Sleep(2 * time.Second)
		bOff := time.Now()
		b.leave()
		res := <-done
		if res.By != "gateway" {
			t.Fatalf("call ended by %s (%s), want the caller's own hang-up", res.By, res.Cause)
		}
		hungUp := time.Now()

		// One-way latency, both directions.
		toneOn := time.Unix(0, a.toneAt.Load())
		heardAt := rec.loudAt(440)
		if heardAt.IsZero() {
			t.Fatal("the caller never heard the participant's 440 Hz")
		}
		_, loudAt := a.received()
		sentAt := rec.frameAt(int(silence / pcm.FrameDuration)) // the tick that sent the tone's first frame
		if loudAt.IsZero() {
			t.Fatal("the participant never heard the caller's 1 kHz")
		}
		down, up := heardAt.Sub(toneOn), loudAt.Sub(sentAt)
		t.Logf("one-way latency: participant → caller %v, caller → participant %v", down.Round(time.Millisecond), up.Round(time.Millisecond))
		if down > time.Second || up > time.Second || up < 0 || down < 0 {
			t.Fatalf("latency %v down, %v up: want well under a second", down, up)
		}

		// Both participants at once, then A alone once B has left.
		both := rec.between(time.Unix(0, b.toneAt.Load()).Add(time.Second), bOff)
		alone := rec.between(bOff.Add(700*time.Millisecond), hungUp.Add(-300*time.Millisecond))
		p440, p660, p550 := pcm.Goertzel(both, 8000, 440), pcm.Goertzel(both, 8000, 660), pcm.Goertzel(both, 8000, 550)
		t.Logf("while both talk (%v): power 440 Hz %.3g, 660 Hz %.3g, 550 Hz %.3g", dur8k(both), p440, p660, p550)
		if len(both) < 4000 || p440 < 50*p550 || p660 < 50*p550 {
			t.Fatalf("the caller did not hear both participants (%v of audio)", dur8k(both))
		}
		a440, a660 := pcm.Goertzel(alone, 8000, 440), pcm.Goertzel(alone, 8000, 660)
		t.Logf("after 660 Hz left (%v): power 440 Hz %.3g, 660 Hz %.3g", dur8k(alone), a440, a660)
		if len(alone) < 2000 || a660 > a440/50 {
			t.Fatalf("660 Hz still heard after its participant left")
		}

		// The caller's participant leaves with the call.
		left := waitGone(t, rooms, room, 5*time.Second)
		t.Logf("caller's participant left the room %v after BYE", left.Round(time.Millisecond))
	})

	// The caller's keys, by RFC 4733 and by SIP INFO, reach the room as
	// LiveKit SIP DTMF data packets, in order.
	t.Run("dtmf to the room", func(t *testing.T) {
		a := joinPeer(t, "room-dtmf", "listener", 440)
		dir := sippDir(t)
		scenario, err := filepath.Abs("testdata/dtmf_call.xml")
		must(t, err)
		out, err := runTool(t, 30*time.Second, dir, "sipp", g.sipAddr(), "-sf", scenario, "-s", "room-dtmf",
			"-m", "1", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mp", fmt.Sprint(freePort(t)),
			"-nostdin", "-timeout", "25s", "-timeout_error")
		if err != nil {
			t.Fatalf("sipp: %v\n%s", err, tail(out))
		}
		const want = "0123456789#*ABCD"
		waitFor(t, 2*time.Second, "every digit in the room", func() bool { return len(a.digits()) >= len(want) })
		if got := a.digits(); got != want {
			t.Fatalf("room received digits %q, want %q", got, want)
		}
		t.Logf("room received %q as SIP DTMF data packets", want)
	})

	// Deleting the room ends the call with a BYE to the caller.
	t.Run("room deleted sends BYE", func(t *testing.T) {
		const room = "room-gone"
		done := make(chan bridge.DialResult, 1)
		go func() { done <- dial(t, g, room, nil, &recorder{}, 20*time.Second) }()
		waitFor(t, 10*time.Second, "the caller in the room", func() bool { return callerIn(t, rooms, room) != nil })
		deleted := time.Now()
		if _, err := rooms.DeleteRoom(context.Background(), &livekit.DeleteRoomRequest{Room: room}); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-done:
			if res.By != "callee" {
				t.Fatalf("call ended by %s (%s), want a BYE from the gateway", res.By, res.Cause)
			}
			t.Logf("BYE %v after DeleteRoom", time.Since(deleted).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatal("no BYE within 5 s of DeleteRoom")
		}
		waitFor(t, 2*time.Second, "the gateway to log the deleted room as the call's end", func() bool {
			return strings.Contains(g.logs.String(), `cause="livekit: room deleted"`)
		})
	})

	if err := g.stop(); err != nil || strings.Contains(g.logs.String(), "DATA RACE") {
		t.Fatalf("gateway exit: %v (a data race is reported in its log)", err)
	}
}

// dial calls the room from this process, playing play (8 kHz) and recording
// what it hears, for d.
func dial(t *testing.T, g *gateway, room string, play []int16, rec *recorder, d time.Duration) bridge.DialResult {
	ports, err := media.NewPortPool(netip.MustParseAddr("127.0.0.1"), 45000, 45999)
	if err != nil {
		t.Error(err)
		return bridge.DialResult{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	res, err := bridge.Dial(ctx, bridge.DialOptions{
		Target: "sip:" + room + "@" + g.sipAddr(), From: "lkcaller", Transport: "udp", Codec: "PCMU",
		Ports: ports, Play: play, PlayRate: 8000, Record: rec.add, Duration: d,
	})
	if err != nil {
		t.Errorf("dial %s: %v", room, err)
	}
	return res
}

// callerIn finds the SIP caller's participant in a room.
func callerIn(t *testing.T, rooms *lksdk.RoomServiceClient, room string) *livekit.ParticipantInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := rooms.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: room})
	if err != nil {
		return nil
	}
	for _, p := range res.Participants {
		if p.Identity == "phone-lkcaller" {
			return p
		}
	}
	return nil
}

// checkCallerAttributes reads the caller's participant from the server.
func checkCallerAttributes(t *testing.T, rooms *lksdk.RoomServiceClient, room string) {
	t.Helper()
	p := callerIn(t, rooms, room)
	if p == nil {
		t.Fatal("the caller is not in the room's participant list")
	}
	want := map[string]string{"sip.phoneNumber": "lkcaller", "sip.trunkPhoneNumber": room, "sip.route": "livekit"}
	for k, v := range want {
		if p.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, p.Attributes[k], v, p.Attributes)
		}
	}
	if p.Attributes["sip.callID"] == "" || p.Name != "Caller lkcaller" || p.Kind != livekit.ParticipantInfo_SIP {
		t.Errorf("participant name %q kind %v attributes %v", p.Name, p.Kind, p.Attributes)
	}
}

// waitGone waits for the caller to leave a room and says how long it took.
func waitGone(t *testing.T, rooms *lksdk.RoomServiceClient, room string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, limit, "the caller's participant to leave", func() bool { return callerIn(t, rooms, room) == nil })
	return time.Since(start)
}

func dur8k(s []int16) time.Duration { return time.Duration(len(s)) * time.Second / 8000 }

// recorder keeps what the in-process caller heard, each frame with the time
// it was played out.
type recorder struct {
	mu     sync.Mutex
	frames [][]int16
	at     []time.Time
}

func (r *recorder) add(frame []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, slices.Clone(frame))
	r.at = append(r.at, time.Now())
}

// frameAt is when frame i was heard: the same tick sent the i-th frame played.
func (r *recorder) frameAt(i int) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.at) {
		return time.Time{}
	}
	return r.at[i]
}

// loudAt is when the first frame dominated by freq was heard.
func (r *recorder) loudAt(freq float64) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, f := range r.frames {
		if rms(f) > 300 && math.Abs(pcm.DominantFrequency(f, 8000)-freq) < 60 {
			return r.at[i]
		}
	}
	return time.Time{}
}

// between is the audio heard from t0 to t1.
func (r *recorder) between(t0, t1 time.Time) []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int16
	for i, f := range r.frames {
		if !r.at[i].Before(t0) && r.at[i].Before(t1) {
			out = append(out, f...)
		}
	}
	return out
}

// lkPeer is a LiveKit participant of the test's own: it publishes a tone
// (silence until on) and records what the phone caller says.
type lkPeer struct {
	t      *testing.T
	room   *lksdk.Room
	track  *lksdk.LocalTrack
	tone   []int16 // one second of the tone, 48 kHz: it loops seamlessly
	on     atomic.Bool
	toneAt atomic.Int64 // when the first tone frame was sent, Unix ns
	stop   chan struct{}
	wg     sync.WaitGroup
	gone   atomic.Bool

	mu     sync.Mutex
	sub    bool
	heard  []int16 // the caller's audio, 48 kHz
	loudAt time.Time
	dtmf   strings.Builder
}

func (p *lkPeer) digits() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dtmf.String()
}

func joinPeer(t *testing.T, room, identity string, freq float64) *lkPeer {
	t.Helper()
	p := &lkPeer{t: t, tone: pcm.Tone(freq, 48000, 48000, 0.3), stop: make(chan struct{})}
	cb := lksdk.NewRoomCallback()
	cb.OnDataPacket = func(data lksdk.DataPacket, _ lksdk.DataReceiveParams) {
		if d, ok := data.(*livekit.SipDTMF); ok {
			p.mu.Lock()
			p.dtmf.WriteString(d.Digit)
			p.mu.Unlock()
		}
	}
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		if track.Kind() != webrtc.RTPCodecTypeAudio || !strings.HasPrefix(rp.Identity(), "phone-") {
			return
		}
		p.mu.Lock()
		p.sub = true
		p.mu.Unlock()
		go p.receive(track)
	}
	r, err := lksdk.ConnectToRoom(lkURL, lksdk.ConnectInfo{APIKey: lkAPIKey, APISecret: lkAPISecret, RoomName: room,
		ParticipantIdentity: identity}, cb, lksdk.WithAutoSubscribe(true), lksdk.WithDisableRegionDiscovery())
	if err != nil {
		t.Fatalf("participant %s joining %s: %v", identity, room, err)
	}
	p.room = r
	p.track, err = lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	must(t, err)
	_, err = r.LocalParticipant.PublishTrack(p.track, &lksdk.TrackPublicationOptions{Name: identity, Source: livekit.TrackSource_MICROPHONE})
	must(t, err)
	enc, err := opus.New(opus.Params{})
	must(t, err)
	p.wg.Add(1)
	go p.publish(enc)
	t.Cleanup(p.leave)
	return p
}

// publish sends 20 ms Opus frames in real time: the tone while on, else silence.
func (p *lkPeer) publish(enc *opus.Codec) {
	defer p.wg.Done()
	n := pcm.FrameSamples(48000)
	silence := make([]int16, n)
	buf := make([]byte, 1500)
	pos := 0
	tick := time.NewTicker(pcm.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		frame := silence
		if p.on.Load() {
			frame = p.tone[pos : pos+n]
			pos = (pos + n) % len(p.tone)
			if p.toneAt.Load() == 0 {
				p.toneAt.Store(time.Now().UnixNano())
			}
		}
		k := enc.Encode(buf, frame)
		if k > 0 {
			p.track.WriteSample(webrtcmedia.Sample{Data: buf[:k], Duration: pcm.FrameDuration}, nil)
		}
	}
}

// receive decodes the caller's track.
func (p *lkPeer) receive(track *webrtc.TrackRemote) {
	dec, err := opus.New(opus.Params{})
	if err != nil {
		p.t.Error(err)
		return
	}
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	var out []int16
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		out = dec.Decode(out[:0], pkt.Payload)
		p.mu.Lock()
		p.heard = append(p.heard, out...)
		if p.loudAt.IsZero() && rms(out) > 300 {
			p.loudAt = time.Now()
		}
		p.mu.Unlock()
	}
}

func (p *lkPeer) subscribed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sub
}

// received is what the participant heard of the caller, and when it first
// heard something loud.
func (p *lkPeer) received() ([]int16, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.heard), p.loudAt
}

func (p *lkPeer) leave() {
	if p.gone.Swap(true) {
		return
	}
	close(p.stop)
	p.wg.Wait()
	p.room.Disconnect()
}
