package webroom

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-voip/switchboard/media/opus"
)

// maxConcealed is the longest gap of lost packets filled by Opus concealment;
// a longer one is left to the ring's underrun handling.
const maxConcealed = 5

// connectTimeout bounds ICE and DTLS after the answer; a browser that has not
// connected by then (wrong ice_ip, a firewall) leaves the room.
var connectTimeout = 20 * time.Second

// browser is a WebRTC peer in a room: its Opus track is its input, the mix
// goes back on a track of ours.
type browser struct {
	h     *Hub
	p     *participant
	room  *Room
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticRTP
	codec *opus.Codec

	mu     sync.Mutex
	closed bool

	// Sending state: the room's clock goroutine only.
	pkt     rtp.Packet
	payload []byte
}

// JoinBrowser answers a browser's offer (non-trickle: the answer carries every
// candidate) and adds the browser to the room called room. name is shown in
// the participant list.
func (h *Hub) JoinBrowser(ctx context.Context, room, name, offer string) (id, answer string, err error) {
	if !ValidName(room) {
		return "", "", ErrBadName
	}
	codec, err := opus.New(opus.Params{})
	if err != nil {
		return "", "", err
	}
	pc, err := h.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", "", fmt.Errorf("webroom: %w", err)
	}
	id = h.newID(KindBrowser)
	log := h.log.With("room", room, "participant", id)
	b := &browser{h: h, pc: pc, codec: codec, payload: make([]byte, codec.MaxPayload(FrameSamples))}
	b.p = newParticipant(ParticipantInfo{ID: id, Kind: KindBrowser, Name: name}, log)
	b.p.send = b.send
	b.p.kick = func(string) { b.close() }
	fail := func(err error) (string, string, error) {
		pc.Close()
		return "", "", fmt.Errorf("webroom: %w", err)
	}

	b.track, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: Rate, Channels: 2},
		"audio", "room-"+room)
	if err != nil {
		return fail(err)
	}
	sender, err := pc.AddTrack(b.track)
	if err != nil {
		return fail(err)
	}
	go drainRTCP(sender) // RTCP feeds the interceptors (NACK, reports) only when read
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() == webrtc.RTPCodecTypeAudio {
			go b.receive(t)
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		log.Debug("peer connection", "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			b.close()
		}
	})

	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(errors.New("ICE gathering did not complete"))
	}
	r, err := h.join(room, b.p)
	if err != nil {
		pc.Close()
		return "", "", err
	}
	b.mu.Lock()
	b.room = r
	closed := b.closed
	b.mu.Unlock()
	if closed { // the peer failed while we were joining
		h.leave(r, b.p)
	}
	limit := connectTimeout
	time.AfterFunc(limit, func() { // a peer that never connects is not left in the room
		if s := pc.ConnectionState(); s == webrtc.PeerConnectionStateNew || s == webrtc.PeerConnectionStateConnecting {
			log.Info("peer did not connect; leaving", "after", limit)
			b.close()
		}
	})
	return id, pc.LocalDescription().SDP, nil
}

// send encodes the mix and sends it on our track.
func (b *browser) send(mix []int16) {
	n := b.codec.Encode(b.payload, mix)
	if n <= 0 {
		return
	}
	b.pkt.Version = 2
	b.pkt.SequenceNumber++
	b.pkt.Timestamp += FrameSamples
	b.pkt.Payload = b.payload[:n]
	b.track.WriteRTP(&b.pkt) // an unbound track (not yet connected) drops it
}

// receive decodes the browser's Opus into its input until the track ends.
func (b *browser) receive(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	pcmBuf := make([]int16, 0, 6*FrameSamples)
	fr := newFramer()
	var pkt rtp.Packet
	var last uint16
	started := false
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) == 0 {
			continue
		}
		pcmBuf = pcmBuf[:0]
		if started {
			gap := pkt.SequenceNumber - last
			if gap == 0 || gap > 0x8000 {
				continue // duplicate or late: the frame's time has passed
			}
			for i := 1; i < int(gap) && i <= maxConcealed; i++ {
				next := []byte(nil)
				if i == int(gap)-1 {
					next = pkt.Payload // in-band FEC of the packet after the loss
				}
				pcmBuf = b.codec.Conceal(pcmBuf, FrameSamples, next)
			}
		}
		started, last = true, pkt.SequenceNumber
		pcmBuf = b.codec.Decode(pcmBuf, pkt.Payload)
		fr.write(pcmBuf, b.p.in.push)
	}
}

// close leaves the room and closes the peer; idempotent.
func (b *browser) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	r := b.room
	go func() { // not on pion's callback goroutine: Close waits for those
		if r != nil {
			b.h.leave(r, b.p)
		}
		b.pc.Close()
	}()
}

func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}
