package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
)

// Codec is one negotiated audio payload format.
type Codec struct {
	Name        string
	PayloadType uint8
	ClockRate   uint32
}

// Media is the outcome of an offer/answer exchange.
type Media struct {
	Remote          netip.AddrPort // where the peer wants RTP
	Codec           Codec
	DTMFPayloadType uint8 // 0: telephone-event not negotiated
	Ptime           time.Duration
	Direction       string // our side's direction, as written in our SDP: sendrecv|sendonly|recvonly|inactive
}

// Errors from offer/answer; a test can errors.Is them, and the server maps them to a status.
var (
	errSDPMalformed     = errors.New("malformed SDP")
	errSDPNoAudio       = errors.New("no usable audio stream in SDP")
	errSDPNoCommonCodec = errors.New("no common codec")
)

// staticCodecs are the G.711 payload types RFC 3551 fixes, valid without an rtpmap.
var staticCodecs = map[uint8]Codec{
	0: {Name: "PCMU", PayloadType: 0, ClockRate: 8000},
	8: {Name: "PCMA", PayloadType: 8, ClockRate: 8000},
}

// supportedCodecs are the codec names this package can negotiate.
var supportedCodecs = map[string]uint8{"PCMU": 0, "PCMA": 8}

const defaultPtime = 20 * time.Millisecond

// offer is the parsed audio part of a peer's SDP.
type offer struct {
	remote    netip.AddrPort
	proto     string
	codecs    []Codec // in the peer's order
	dtmfPT    uint8
	dtmfFmtp  string
	ptime     time.Duration
	direction string
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
				if c.ClockRate == 8000 && o.dtmfPT == 0 {
					o.dtmfPT = pt
					o.dtmfFmtp = fmtp[pt]
				}
				continue
			}
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

// negotiate picks the codec by our preference order, keeping the offer's payload numbers.
func negotiate(o *offer, prefs []string) (Media, error) {
	if o.proto != "RTP/AVP" {
		return Media{}, fmt.Errorf("%w: transport %s not supported (RTP/AVP only)", errSDPNoCommonCodec, o.proto)
	}
	for _, want := range prefs {
		for _, c := range o.codecs {
			if strings.EqualFold(c.Name, want) && c.ClockRate == 8000 {
				c.Name = strings.ToUpper(c.Name)
				return Media{
					Remote:          o.remote,
					Codec:           c,
					DTMFPayloadType: o.dtmfPT,
					Ptime:           o.ptime,
					Direction:       mirrorDirection(o.direction),
				}, nil
			}
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
	dtmfPT    uint8
	dtmfFmtp  string
	ptime     time.Duration
	direction string
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
	for _, c := range p.codecs {
		formats = append(formats, strconv.Itoa(int(c.PayloadType)))
		attrs = append(attrs, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d %s/%d", c.PayloadType, c.Name, c.ClockRate)))
	}
	if p.dtmfPT != 0 {
		formats = append(formats, strconv.Itoa(int(p.dtmfPT)))
		attrs = append(attrs, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d telephone-event/8000", p.dtmfPT)))
		fmtp := p.dtmfFmtp
		if fmtp == "" {
			fmtp = "0-16"
		}
		attrs = append(attrs, sdp.NewAttribute("fmtp", fmt.Sprintf("%d %s", p.dtmfPT, fmtp)))
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
				Protos:  []string{"RTP", "AVP"},
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
	if m.DTMFPayloadType != 0 {
		p.dtmfPT = m.DTMFPayloadType
		p.dtmfFmtp = o.dtmfFmtp
	}
	return buildSDP(p)
}

// offerCodecs maps codec names to their static payload types, in order.
func offerCodecs(names []string) ([]Codec, error) {
	out := make([]Codec, 0, len(names))
	for _, n := range names {
		pt, ok := supportedCodecs[strings.ToUpper(n)]
		if !ok {
			return nil, fmt.Errorf("codec %q not supported (PCMU, PCMA)", n)
		}
		out = append(out, staticCodecs[pt])
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
				return Media{
					Remote:          a.remote,
					Codec:           c,
					DTMFPayloadType: a.dtmfPT,
					Ptime:           a.ptime,
					Direction:       mirrorDirection(a.direction),
				}, nil
			}
		}
	}
	return Media{}, fmt.Errorf("%w in answer", errSDPNoCommonCodec)
}
