// Package webroom is a small audio room that Switchboard hosts itself: phone
// calls and browsers (WebRTC, Opus, with pion) join a room by name, and each
// participant hears the mix of everyone else.
//
// Every participant has one input, buffered in 20 ms frames at 48 kHz; the
// room's own 20 ms clock takes a frame from each, sums them (int32, clipped)
// and sends each participant the sum without its own voice.
package webroom

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

const (
	// Rate is the room's PCM rate: Opus's, so browsers need no resampling.
	Rate = 48000
	// FrameSamples is one 20 ms frame at Rate.
	FrameSamples = Rate / 50
)

// Participant kinds.
const (
	KindPhone   = "phone"
	KindBrowser = "browser"
)

var (
	// ErrBadName: room names are what a URL path segment can carry unescaped.
	ErrBadName = errors.New("webroom: room name must be 1–64 of A-Z a-z 0-9 _ . - and start with a letter or digit")
	// ErrClosed: the hub is shutting down.
	ErrClosed = errors.New("webroom: closed")
	// ErrNoRoom: no room of that name exists.
	ErrNoRoom = errors.New("webroom: no such room")
)

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Config is what a Hub needs.
type Config struct {
	// ICEIP is the only address ICE gathers host candidates on (and so the one
	// browsers send media to). Unset: every non-loopback interface.
	ICEIP netip.Addr
	// UDPPortMin and UDPPortMax bound the UDP ports of ICE; 0, 0: any.
	UDPPortMin, UDPPortMax int
	Logger                 *slog.Logger
}

// Hub holds the rooms by name; rooms come into being with their first
// participant and go when the last one leaves or they are deleted.
type Hub struct {
	api *webrtc.API
	log *slog.Logger
	ids atomic.Uint64

	mu     sync.Mutex
	rooms  map[string]*Room
	closed bool
}

// NewHub makes a hub whose WebRTC peers gather ICE candidates as cfg says.
func NewHub(cfg Config) (*Hub, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	api, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	return &Hub{api: api, log: cfg.Logger, rooms: make(map[string]*Room)}, nil
}

// newAPI is pion set up for audio-only Opus peers on the configured address.
func newAPI(cfg Config) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: Rate, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("webroom: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("webroom: %w", err)
	}
	var s webrtc.SettingEngine
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)         // hosts are named by IP; no mDNS traffic
	s.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second) // a closed tab leaves within 15 s
	if ip := cfg.ICEIP; ip.IsValid() && !ip.IsUnspecified() {
		want := net.IP(ip.AsSlice())
		s.SetIPFilter(func(a net.IP) bool { return a.Equal(want) })
		s.SetIncludeLoopbackCandidate(ip.IsLoopback()) // pion skips loopback unless told: a one-machine set-up
		if ip.Is4() {
			s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		} else {
			s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP6})
		}
	} else {
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	if cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0 {
		if err := s.SetEphemeralUDPPortRange(uint16(cfg.UDPPortMin), uint16(cfg.UDPPortMax)); err != nil {
			return nil, fmt.Errorf("webroom: udp ports %d-%d: %w", cfg.UDPPortMin, cfg.UDPPortMax, err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s)), nil
}

// ValidName reports whether name can be a room's name.
func ValidName(name string) bool { return validName.MatchString(name) }

// join adds p to the room called name, making the room if needed.
func (h *Hub) join(name string, p *participant) (*Room, error) {
	if !ValidName(name) {
		return nil, ErrBadName
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	r := h.rooms[name]
	if r == nil {
		r = newRoom(name, h.log.With("room", name))
		h.rooms[name] = r
		go r.run()
		h.log.Info("room opened", "room", name)
	}
	r.add(p)
	p.log.Info("joined room", "room", name, "participant", p.info.ID, "kind", p.info.Kind, "participants", r.count())
	return r, nil
}

// leave takes p out of r; an empty room closes.
func (h *Hub) leave(r *Room, p *participant) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !r.remove(p) {
		return
	}
	p.log.Info("left room", "room", r.name, "participant", p.info.ID, "participants", r.count())
	if r.count() == 0 && h.rooms[r.name] == r {
		delete(h.rooms, r.name)
		r.stop()
		h.log.Info("room closed", "room", r.name)
	}
}

// Delete closes the room called name: phone participants are hung up (BYE)
// and browser peers closed.
func (h *Hub) Delete(name string) error {
	h.mu.Lock()
	r := h.rooms[name]
	if r == nil {
		h.mu.Unlock()
		return ErrNoRoom
	}
	delete(h.rooms, name)
	parts := r.removeAll()
	r.stop()
	h.mu.Unlock()
	h.log.Info("room deleted", "room", name, "participants", len(parts))
	for _, p := range parts {
		p.kick("room deleted")
	}
	return nil
}

// Participants lists who is in the room called name, in joining order.
func (h *Hub) Participants(name string) ([]ParticipantInfo, error) {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return nil, ErrNoRoom
	}
	return r.list(), nil
}

// Rooms lists the open rooms' names and sizes.
func (h *Hub) Rooms() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.rooms))
	for name, r := range h.rooms {
		out[name] = r.count()
	}
	return out
}

// Close deletes every room and refuses new participants.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	names := make([]string, 0, len(h.rooms))
	for name := range h.rooms {
		names = append(names, name)
	}
	h.mu.Unlock()
	for _, name := range names {
		h.Delete(name)
	}
}

func (h *Hub) newID(kind string) string {
	return fmt.Sprintf("%s-%d", kind, h.ids.Add(1))
}
