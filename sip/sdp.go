package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
)

// Codec is one negotiated audio payload format.
type Codec struct {
	Name        string // canonical: "PCMU", "PCMA", "opus"
	PayloadType uint8
	ClockRate   uint32
	Fmtp        string // the peer's a=fmtp parameters for it ("" when none)
}

// Media is the outcome of an offer/answer exchange.
type Media struct {
	Remote          netip.AddrPort // where the peer wants RTP
	Codec           Codec
	DTMFPayloadType uint8 // 0: telephone-event not negotiated
	Ptime           time.Duration
	Direction       string // our side's direction, as written in our SDP: sendrecv|sendonly|recvonly|inactive
	SRTP            *SRTP  // nil: plain RTP; else the SDES keys (sdes.go)
}

// Errors from offer/answer; a test can errors.Is them, and the server maps them to a status.
var (
	errSDPMalformed     = errors.New("malformed SDP")
	errSDPNoAudio       = errors.New("no usable audio stream in SDP")
	errSDPNoCommonCodec = errors.New("no common codec")
)

// staticCodecs are the payload types RFC 3551 fixes, valid without an rtpmap.
// G.722 samples at 16 kHz but is signalled and clocked at 8000 (RFC 3551 §4.5.2).
var staticCodecs = map[uint8]Codec{
	0: {Name: "PCMU", PayloadType: 0, ClockRate: 8000},
	8: {Name: "PCMA", PayloadType: 8, ClockRate: 8000},
	9: {Name: "G722", PayloadType: 9, ClockRate: 8000},
}

// supportedCodecs are the codecs this package can negotiate, by upper-case
// name, with the payload type we offer: Opus takes WebRTC's customary dynamic 111.
var supportedCodecs = map[string]Codec{
	"PCMU": staticCodecs[0],
	"PCMA": staticCodecs[8],
	"G722": staticCodecs[9],
	"OPUS": {Name: "opus", PayloadType: 111, ClockRate: 48000},
}

// opusFmtp is what our Opus decoder asks of a sender (RFC 7587 §6.1): FEC,
// which our concealment uses, and any band up to 48 kHz, the rate we decode at.
const opusFmtp = "maxplaybackrate=48000; useinbandfec=1"

const defaultPtime = 20 * time.Millisecond

// telephoneEvent is one offered RFC 4733 format; it pairs with the audio
// codec of the same clock rate.
type telephoneEvent struct {
	pt   uint8
	rate uint32
	fmtp string
}

// offer is the parsed audio part of a peer's SDP.
type offer struct {
	remote    netip.AddrPort
	proto     string
	codecs    []Codec // in the peer's order
	events    []telephoneEvent
	ptime     time.Duration
	direction string
	cryptos   []sdesCrypto // usable a=crypto lines, in the peer's order (sdes.go)
}

// parseSDP reads the first active audio stream of an SDP body.
func parseSDP(body []byte) (*offer, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: %v", errSDPMalformed, err)
	}
	sessionDir := directionOf(sd.Attributes, "sendrecv")
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		o := &offer{
			proto:     strings.Join(md.MediaName.Protos, "/"),
			ptime:     defaultPtime,
			direction: directionOf(md.Attributes, sessionDir),
		}
		conn := md.ConnectionInformation
		if conn == nil {
			conn = sd.ConnectionInformation
		}
		if conn == nil || conn.Address == nil {
			return nil, fmt.Errorf("%w: no c= line for audio", errSDPMalformed)
		}
		ip, err := netip.ParseAddr(conn.Address.Address)
		if err != nil {
			return nil, fmt.Errorf("%w: c= address %q is not an IP", errSDPMalformed, conn.Address.Address)
		}
		if md.MediaName.Port.Value < 0 || md.MediaName.Port.Value > 65535 {
			return nil, fmt.Errorf("%w: bad port %d", errSDPMalformed, md.MediaName.Port.Value)
		}
		o.remote = netip.AddrPortFrom(ip, uint16(md.MediaName.Port.Value))

		rtpmap := map[uint8]Codec{}
		fmtp := map[uint8]string{}
		for _, a := range md.Attributes {
			switch a.Key {
			case "rtpmap":
				pt, name, rate, ok := parseRtpmap(a.Value)
				if ok {
					rtpmap[pt] = Codec{Name: name, PayloadType: pt, ClockRate: rate}
				}
			case "fmtp":
				if pts, rest, ok := strings.Cut(a.Value, " "); ok {
					if pt, err := strconv.ParseUint(pts, 10, 8); err == nil {
						fmtp[uint8(pt)] = strings.TrimSpace(rest)
					}
				}
			case "crypto":
				if c, ok := parseCrypto(a.Value); ok {
					o.cryptos = append(o.cryptos, c)
				}
			case "ptime":
				if ms, err := strconv.Atoi(strings.TrimSpace(a.Value)); err == nil && ms > 0 && ms <= 200 {
					o.ptime = time.Duration(ms) * time.Millisecond
				}
			}
		}
		for _, f := range md.MediaName.Formats {
			n, err := strconv.ParseUint(f, 10, 8)
			if err != nil || n > 127 {
				continue
			}
			pt := uint8(n)
			c, ok := rtpmap[pt]
			if !ok {
				c, ok = staticCodecs[pt]
			}
			if !ok {
				c = Codec{Name: "", PayloadType: pt}
			}
			if strings.EqualFold(c.Name, "telephone-event") {
				o.events = append(o.events, telephoneEvent{pt: pt, rate: c.ClockRate, fmtp: fmtp[pt]})
				continue
			}
			c.Fmtp = fmtp[pt]
			o.codecs = append(o.codecs, c)
		}
		return o, nil
	}
	return nil, errSDPNoAudio
}

func parseRtpmap(v string) (pt uint8, name string, rate uint32, ok bool) {
	pts, enc, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found {
		return 0, "", 0, false
	}
	n, err := strconv.ParseUint(pts, 10, 8)
	if err != nil {
		return 0, "", 0, false
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	if len(parts) < 2 {
		return 0, "", 0, false
	}
	r, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0, "", 0, false
	}
	return uint8(n), parts[0], uint32(r), true
}

func directionOf(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return def
}

// mirrorDirection is the answer's direction for an offered one (RFC 3264 6.1).
func mirrorDirection(d string) string {
	switch d {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	case "inactive":
		return "inactive"
	}
	return "sendrecv"
}

// event is the offered telephone-event at rate, if any (RFC 4733 §2.1: events
// share the audio's clock).
func (o *offer) event(rate uint32) (telephoneEvent, bool) {
	for _, e := range o.events {
		if e.rate == rate {
			return e, true
		}
	}
	return telephoneEvent{}, false
}

// match finds a supported codec in the offer by name and clock rate, named
// canonically, with the offer's payload number and fmtp.
func (o *offer) match(name string) (Codec, bool) {
	want, ok := supportedCodecs[strings.ToUpper(name)]
	if !ok {
		return Codec{}, false
	}
	for _, c := range o.codecs {
		if strings.EqualFold(c.Name, want.Name) && c.ClockRate == want.ClockRate {
			c.Name = want.Name
			return c, true
		}
	}
	return Codec{}, false
}

// negotiate picks the codec by our preference order, keeping the offer's payload
// numbers, and the telephone-event at that codec's clock rate.
func negotiate(o *offer, prefs []string) (Media, error) {
	if o.proto != "RTP/AVP" && o.proto != "RTP/SAVP" { // SAVP's keys: negotiateSRTP (sdes.go)
		return Media{}, fmt.Errorf("%w: transport %s not supported (RTP/AVP, RTP/SAVP)", errSDPNoCommonCodec, o.proto)
	}
	for _, want := range prefs {
		if c, ok := o.match(want); ok {
			ev, _ := o.event(c.ClockRate)
			return Media{
				Remote:          o.remote,
				Codec:           c,
				DTMFPayloadType: ev.pt,
				Ptime:           o.ptime,
				Direction:       mirrorDirection(o.direction),
			}, nil
		}
	}
	names := make([]string, 0, len(o.codecs))
	for _, c := range o.codecs {
		if c.Name == "" {
			names = append(names, strconv.Itoa(int(c.PayloadType)))
		} else {
			names = append(names, c.Name)
		}
	}
	return Media{}, fmt.Errorf("%w: offered %s, we accept %s", errSDPNoCommonCodec,
		strings.Join(names, ","), strings.Join(prefs, ","))
}

// sdpParams describe our side of an SDP body.
type sdpParams struct {
	sessionID uint64
	version   uint64
	ip        netip.Addr
	port      uint16
	codecs    []Codec
	dtmfPT    uint8  // telephone-event at the first codec's rate; dtmfPT+1… at other rates
	dtmfFmtp  string // "" writes 0-16
	ptime     time.Duration
	direction string
	proto     string // "" is RTP/AVP
	crypto    string // our a=crypto value on an SRTP answer
}

// buildSDP writes an offer or an answer for one audio stream.
func buildSDP(p sdpParams) ([]byte, error) {
	nettype := "IP4"
	if p.ip.Is6() && !p.ip.Is4In6() {
		nettype = "IP6"
	}
	addr := p.ip.Unmap().String()
	formats := make([]string, 0, len(p.codecs)+1)
	attrs := make([]sdp.Attribute, 0, len(p.codecs)+4)
	var rates []uint32 // distinct clock rates, in codec order: one telephone-event each
	for _, c := range p.codecs {
		formats = append(formats, strconv.Itoa(int(c.PayloadType)))
		if strings.EqualFold(c.Name, "opus") {
			// RFC 7587 §7: always "/2"; mono is said in fmtp (stereo=0 is the default).
			attrs = append(attrs, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d opus/48000/2", c.PayloadType)),
				sdp.NewAttribute("fmtp", fmt.Sprintf("%d %s", c.PayloadType, opusFmtp)))
		} else {
			attrs = append(attrs, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d %s/%d", c.PayloadType, c.Name, c.ClockRate)))
		}
		if !slices.Contains(rates, c.ClockRate) {
			rates = append(rates, c.ClockRate)
		}
	}
	if p.dtmfPT != 0 {
		fmtp := p.dtmfFmtp
		if fmtp == "" {
			fmtp = "0-16"
		}
		for i, rate := range rates {
			pt := p.dtmfPT + uint8(i)
			formats = append(formats, strconv.Itoa(int(pt)))
			attrs = append(attrs, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d telephone-event/%d", pt, rate)),
				sdp.NewAttribute("fmtp", fmt.Sprintf("%d %s", pt, fmtp)))
		}
	}
	ptime := p.ptime
	if ptime <= 0 {
		ptime = defaultPtime
	}
	attrs = append(attrs, sdp.NewAttribute("ptime", strconv.Itoa(int(ptime/time.Millisecond))))
	dir := p.direction
	if dir == "" {
		dir = "sendrecv"
	}
	attrs = append(attrs, sdp.NewPropertyAttribute(dir))
	if p.crypto != "" {
		attrs = append(attrs, sdp.NewAttribute("crypto", p.crypto))
	}
	protos := []string{"RTP", "AVP"}
	if p.proto != "" {
		protos = strings.Split(p.proto, "/")
	}

	sd := sdp.SessionDescription{
		Version: 0,
		Origin: sdp.Origin{
			Username:       "switchboard",
			SessionID:      p.sessionID,
			SessionVersion: p.version,
			NetworkType:    "IN",
			AddressType:    nettype,
			UnicastAddress: addr,
		},
		SessionName: "switchboard",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN",
			AddressType: nettype,
			Address:     &sdp.Address{Address: addr},
		},
		TimeDescriptions: []sdp.TimeDescription{{Timing: sdp.Timing{}}},
		MediaDescriptions: []*sdp.MediaDescription{{
			MediaName: sdp.MediaName{
				Media:   "audio",
				Port:    sdp.RangedPort{Value: int(p.port)},
				Protos:  protos,
				Formats: formats,
			},
			Attributes: attrs,
		}},
	}
	return sd.Marshal()
}

// answerSDP builds our answer to a negotiated offer.
func answerSDP(o *offer, m Media, local netip.AddrPort, ip netip.Addr, sessionID, version uint64) ([]byte, error) {
	p := sdpParams{
		sessionID: sessionID,
		version:   version,
		ip:        ip,
		port:      local.Port(),
		codecs:    []Codec{m.Codec},
		ptime:     m.Ptime,
		direction: m.Direction,
	}
	if m.SRTP != nil { // the offer's profile (SAVP, or best-effort AVP) with our key
		p.proto, p.crypto = o.proto, o.cryptoAttr(m.SRTP)
	}
	if m.DTMFPayloadType != 0 {
		p.dtmfPT = m.DTMFPayloadType
		if ev, ok := o.event(m.Codec.ClockRate); ok {
			p.dtmfFmtp = ev.fmtp
		}
	}
	return buildSDP(p)
}

// offerCodecs maps codec names to the payload types we offer, in order.
func offerCodecs(names []string) ([]Codec, error) {
	out := make([]Codec, 0, len(names))
	for _, n := range names {
		c, ok := supportedCodecs[strings.ToUpper(n)]
		if !ok {
			return nil, fmt.Errorf("codec %q not supported (PCMU, PCMA, G722, opus)", n)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		out = append(out, staticCodecs[0], staticCodecs[8])
	}
	return out, nil
}

// mediaFromAnswer reads what the peer accepted from our offer.
func mediaFromAnswer(body []byte, offered []Codec) (Media, error) {
	a, err := parseSDP(body)
	if err != nil {
		return Media{}, err
	}
	for _, c := range a.codecs {
		for _, want := range offered {
			if strings.EqualFold(c.Name, want.Name) && c.ClockRate == want.ClockRate {
				c.Name = want.Name
				ev, _ := a.event(c.ClockRate)
				return Media{
					Remote:          a.remote,
					Codec:           c,
					DTMFPayloadType: ev.pt,
					Ptime:           a.ptime,
					Direction:       mirrorDirection(a.direction),
				}, nil
			}
		}
	}
	return Media{}, fmt.Errorf("%w in answer", errSDPNoCommonCodec)
}
