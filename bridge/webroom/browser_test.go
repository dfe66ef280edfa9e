package webroom

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media/opus"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

// peer is a WebRTC client made with pion, standing in for a browser: it sends
// a tone and keeps the audio it receives.
type peer struct {
	pc    *webrtc.PeerConnection
	mu    sync.Mutex
	heard []int16
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	var s webrtc.SettingEngine
	s.SetIncludeLoopbackCandidate(true)
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(s)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &peer{pc: pc}
}

func (p *peer) received() []int16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int16(nil), p.heard...)
}

// join offers to the room over HTTP and sends a tone until ctx ends.
func (p *peer) join(t *testing.T, ctx context.Context, url string, freq float64) string {
	t.Helper()
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: Rate, Channels: 2}, "audio", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	p.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		dec, _ := opus.New(opus.Params{})
		var buf []int16
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			buf = dec.Decode(buf[:0], pkt.Payload)
			p.mu.Lock()
			p.heard = append(p.heard, buf...)
			p.mu.Unlock()
		}
	})
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	body, _ := json.Marshal(offerRequest{SDP: p.pc.LocalDescription().SDP, Name: "pion"})
	resp, err := http.Post(url+"/offer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans offerResponse
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != 200 {
		t.Fatalf("offer: %s, %v", resp.Status, err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	go func() {
		enc, _ := opus.New(opus.Params{})
		tone := pcm.Tone(freq, Rate, Rate, 0.3)
		out := make([]byte, 1500)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i = (i + FrameSamples) % (len(tone) - FrameSamples) {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n := enc.Encode(out, tone[i:i+FrameSamples])
			track.WriteSample(media.Sample{Data: out[:n], Duration: 20 * time.Millisecond})
		}
	}()
	return ans.ID
}

func getParticipants(t *testing.T, url string) (int, []ParticipantInfo) {
	t.Helper()
	resp, err := http.Get(url + "/participants")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Participants []ParticipantInfo }
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v.Participants
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// A WebRTC peer (pion, over loopback) and a caller in one room hear each other;
// the peer closing its connection takes it out of the room.
func TestBrowserPeerAndPhone(t *testing.T) {
	h := newTestHub(t)
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	url := srv.URL + "/rooms/mixed"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	c := newControls()
	s, err := h.Agent(func(agent.Call) (string, error) { return "mixed", nil }).Start(ctx, agent.Call{ID: "call-1", From: "alice"}, c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go feed(ctx, s, 1000, 8000)

	p := newPeer(t)
	id := p.join(t, ctx, url, 440)
	eventually(t, 10*time.Second, "the peer to hear 1 kHz", func() bool {
		return near(lastDominant(p.received(), Rate, 200*time.Millisecond), 1000)
	})
	eventually(t, 5*time.Second, "the caller to hear 440 Hz", func() bool {
		heard, _ := c.heard()
		return near(lastDominant(heard, Rate, 200*time.Millisecond), 440)
	})
	status, ps := getParticipants(t, url)
	if status != 200 || len(ps) != 2 || ps[0].Kind != KindPhone || ps[1].ID != id || ps[1].Kind != KindBrowser || ps[1].Name != "pion" {
		t.Fatalf("participants: %d %+v", status, ps)
	}

	p.pc.Close()
	eventually(t, 10*time.Second, "the closed peer to leave", func() bool {
		_, ps := getParticipants(t, url)
		return len(ps) == 1 && ps[0].Kind == KindPhone
	})
}

// A peer that offers but never connects (it drops the answer) does not stay
// in the room.
func TestUnconnectedPeerLeaves(t *testing.T) {
	defer func(d time.Duration) { connectTimeout = d }(connectTimeout)
	connectTimeout = time.Second
	h := newTestHub(t)
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	p := newPeer(t)
	if _, err := p.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(offerRequest{SDP: offer.SDP})
	resp, err := http.Post(srv.URL+"/rooms/ghost/offer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, ps := getParticipants(t, srv.URL+"/rooms/ghost"); status != 200 || len(ps) != 1 {
		t.Fatalf("after the offer: %d %+v", status, ps)
	}
	eventually(t, 5*time.Second, "the unconnected peer to leave", func() bool {
		status, _ := getParticipants(t, srv.URL+"/rooms/ghost")
		return status == http.StatusNotFound
	})
}

func TestHTTPErrors(t *testing.T) {
	h := newTestHub(t)
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/rooms/lobby", "", 200},
		{"GET", "/rooms/a%20b", "", 400},
		{"GET", "/rooms/lobby/participants", "", 404},
		{"DELETE", "/rooms/lobby", "", 404},
		{"POST", "/rooms/lobby/offer", "not json", 400},
		{"POST", "/rooms/lobby/offer", `{"sdp": "v=0 garbage"}`, 400},
		{"GET", "/rooms/", "", 200},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader([]byte(tc.body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
	if rooms := h.Rooms(); len(rooms) != 0 {
		t.Fatalf("a failed offer left rooms behind: %v", rooms)
	}
}

// Sending one 20 ms mix to a browser: Opus encode and the RTP packet, our
// side of pion's track (an unbound one, so no socket write is timed).
func BenchmarkBrowserSend(b *testing.B) {
	codec, err := opus.New(opus.Params{})
	if err != nil {
		b.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: Rate, Channels: 2}, "audio", "bench")
	if err != nil {
		b.Fatal(err)
	}
	br := &browser{codec: codec, track: track, payload: make([]byte, codec.MaxPayload(FrameSamples))}
	mix := pcm.Tone(440, Rate, FrameSamples, 0.3)
	b.ReportAllocs()
	for b.Loop() {
		br.send(mix)
	}
}
