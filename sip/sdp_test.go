package sip

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func sdpOffer(lines ...string) []byte {
	base := []string{
		"v=0",
		"o=- 1 1 IN IP4 10.0.0.5",
		"s=-",
		"c=IN IP4 10.0.0.5",
		"t=0 0",
	}
	return []byte(strings.Join(append(base, lines...), "\r\n") + "\r\n")
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name    string
		offer   []byte
		prefs   []string
		want    Media
		wantErr error
	}{
		{
			name:  "PCMU with telephone-event, sendrecv",
			offer: sdpOffer("m=audio 4000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"),
			prefs: []string{"PCMU", "PCMA"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000},
				DTMFPayloadType: 101, Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "our preference wins over the offer's order",
			offer: sdpOffer("m=audio 4000 RTP/AVP 0 8"),
			prefs: []string{"PCMA", "PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000},
				Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "dynamic payload numbers and ptime kept",
			offer: sdpOffer("m=audio 4000 RTP/AVP 96 97", "a=rtpmap:96 pcmu/8000", "a=rtpmap:97 telephone-event/8000", "a=ptime:30"),
			prefs: []string{"PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{Name: "PCMU", PayloadType: 96, ClockRate: 8000},
				DTMFPayloadType: 97, Ptime: 30 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "sendonly mirrors to recvonly, media-level c= wins",
			offer: sdpOffer("m=audio 5000 RTP/AVP 8", "c=IN IP4 192.0.2.1", "a=sendonly"),
			prefs: []string{"PCMU", "PCMA"},
			want: Media{Remote: netip.MustParseAddrPort("192.0.2.1:5000"), Codec: Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000},
				Ptime: 20 * time.Millisecond, Direction: "recvonly"},
		},
		{
			name:  "recvonly mirrors to sendonly",
			offer: sdpOffer("m=audio 5000 RTP/AVP 0", "a=recvonly"),
			prefs: []string{"PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:5000"), Codec: Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000},
				Ptime: 20 * time.Millisecond, Direction: "sendonly"},
		},
		{
			name:  "session-level inactive stays inactive",
			offer: sdpOffer("a=inactive", "m=audio 5000 RTP/AVP 0"),
			prefs: []string{"PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:5000"), Codec: Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000},
				Ptime: 20 * time.Millisecond, Direction: "inactive"},
		},
		{
			name: "opus preferred: dynamic PT and fmtp kept, telephone-event/48000 pairs with it",
			offer: sdpOffer("m=audio 4000 RTP/AVP 107 0 101 102", "a=rtpmap:107 opus/48000/2",
				"a=fmtp:107 maxplaybackrate=16000; useinbandfec=1", "a=rtpmap:101 telephone-event/8000",
				"a=rtpmap:102 telephone-event/48000", "a=fmtp:102 0-15"),
			prefs: []string{"OPUS", "PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"),
				Codec:           Codec{Name: "opus", PayloadType: 107, ClockRate: 48000, Fmtp: "maxplaybackrate=16000; useinbandfec=1"},
				DTMFPayloadType: 102, Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name: "same offer, G.711 preferred: telephone-event/8000 pairs with it",
			offer: sdpOffer("m=audio 4000 RTP/AVP 107 0 101 102", "a=rtpmap:107 opus/48000/2",
				"a=fmtp:107 maxplaybackrate=16000; useinbandfec=1", "a=rtpmap:101 telephone-event/8000",
				"a=rtpmap:102 telephone-event/48000"),
			prefs: []string{"PCMU", "OPUS"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000},
				DTMFPayloadType: 101, Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "opus without fmtp, with only telephone-event/8000: no DTMF at a foreign clock",
			offer: sdpOffer("m=audio 4000 RTP/AVP 96 101", "a=rtpmap:96 OPUS/48000/2", "a=rtpmap:101 telephone-event/8000"),
			prefs: []string{"OPUS", "PCMU", "PCMA"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{Name: "opus", PayloadType: 96, ClockRate: 48000},
				Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "G.711-only offer is unchanged by opus in our list",
			offer: sdpOffer("m=audio 4000 RTP/AVP 8 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"),
			prefs: []string{"OPUS", "PCMU", "PCMA"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000},
				DTMFPayloadType: 101, Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "G.722 by its static PT, no rtpmap: clock 8000, pairs with telephone-event/8000",
			offer: sdpOffer("m=audio 4000 RTP/AVP 9 0 101", "a=rtpmap:101 telephone-event/8000"),
			prefs: []string{"OPUS", "G722", "PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{Name: "G722", PayloadType: 9, ClockRate: 8000},
				DTMFPayloadType: 101, Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:    "opus offered but not in our list",
			offer:   sdpOffer("m=audio 4000 RTP/AVP 111", "a=rtpmap:111 opus/48000/2"),
			prefs:   []string{"PCMU", "PCMA"},
			wantErr: errSDPNoCommonCodec,
		},
		{
			name:    "opus at a wrong clock rate is not opus",
			offer:   sdpOffer("m=audio 4000 RTP/AVP 111", "a=rtpmap:111 opus/8000"),
			prefs:   []string{"OPUS"},
			wantErr: errSDPNoCommonCodec,
		},
		{
			name:    "G.729 only",
			offer:   sdpOffer("m=audio 4000 RTP/AVP 18", "a=rtpmap:18 G729/8000"),
			prefs:   []string{"PCMU", "PCMA"},
			wantErr: errSDPNoCommonCodec,
		},
		{
			name:    "DTLS-SRTP profile refused", // SDES RTP/SAVP: sdes_test.go
			offer:   sdpOffer("m=audio 4000 UDP/TLS/RTP/SAVP 0"),
			prefs:   []string{"PCMU"},
			wantErr: errSDPNoCommonCodec,
		},
		{
			name:    "video only",
			offer:   sdpOffer("m=video 4000 RTP/AVP 96"),
			prefs:   []string{"PCMU"},
			wantErr: errSDPNoAudio,
		},
		{
			name:    "not SDP",
			offer:   []byte("hello there\r\n"),
			prefs:   []string{"PCMU"},
			wantErr: errSDPMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseSDP(tt.offer)
			var m Media
			if err == nil {
				m, err = negotiate(o, tt.prefs)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m != tt.want {
				t.Fatalf("media = %+v\nwant    %+v", m, tt.want)
			}
		})
	}
}

func TestAnswerSDP(t *testing.T) {
	tests := []struct {
		name     string
		offer    []byte
		prefs    []string // default PCMU, PCMA
		contains []string
		absent   []string
	}{
		{
			name:     "keeps payload numbers, telephone-event and its fmtp",
			offer:    sdpOffer("m=audio 4000 RTP/AVP 96 100", "a=rtpmap:96 PCMU/8000", "a=rtpmap:100 telephone-event/8000", "a=fmtp:100 0-15", "a=ptime:30"),
			contains: []string{"m=audio 30000 RTP/AVP 96 100\r\n", "a=rtpmap:96 PCMU/8000", "a=rtpmap:100 telephone-event/8000", "a=fmtp:100 0-15", "a=ptime:30", "a=sendrecv", "c=IN IP4 203.0.113.7", "o=switchboard 42 1 IN IP4 203.0.113.7"},
		},
		{
			name:     "no telephone-event when not offered",
			offer:    sdpOffer("m=audio 4000 RTP/AVP 8 0"),
			contains: []string{"m=audio 30000 RTP/AVP 0\r\n", "a=ptime:20"},
			absent:   []string{"telephone-event", "a=rtpmap:8"},
		},
		{
			name: "opus answered with our fmtp, /2 and telephone-event/48000",
			offer: sdpOffer("m=audio 4000 RTP/AVP 109 0 101 110", "a=rtpmap:109 opus/48000/2", "a=fmtp:109 stereo=1; sprop-stereo=1",
				"a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=rtpmap:110 telephone-event/48000", "a=fmtp:110 0-15"),
			prefs: []string{"OPUS", "PCMU"},
			contains: []string{"m=audio 30000 RTP/AVP 109 110\r\n", "a=rtpmap:109 opus/48000/2", "a=fmtp:109 maxplaybackrate=48000; useinbandfec=1",
				"a=rtpmap:110 telephone-event/48000", "a=fmtp:110 0-15", "a=ptime:20"},
			absent: []string{"stereo", "telephone-event/8000", "a=rtpmap:0"},
		},
		{
			name:     "sendonly answered recvonly",
			offer:    sdpOffer("m=audio 4000 RTP/AVP 0", "a=sendonly"),
			contains: []string{"a=recvonly"},
			absent:   []string{"a=sendrecv", "a=sendonly"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseSDP(tt.offer)
			if err != nil {
				t.Fatal(err)
			}
			prefs := tt.prefs
			if prefs == nil {
				prefs = []string{"PCMU", "PCMA"}
			}
			m, err := negotiate(o, prefs)
			if err != nil {
				t.Fatal(err)
			}
			body, err := answerSDP(o, m, netip.MustParseAddrPort("127.0.0.1:30000"), netip.MustParseAddr("203.0.113.7"), 42, 1)
			if err != nil {
				t.Fatal(err)
			}
			s := string(body)
			for _, c := range tt.contains {
				if !strings.Contains(s, c) {
					t.Errorf("answer lacks %q:\n%s", c, s)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(s, a) {
					t.Errorf("answer has %q:\n%s", a, s)
				}
			}
			// Our answer must itself parse back to the same media.
			back, err := parseSDP(body)
			if err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			got, err := mediaFromAnswer(body, []Codec{m.Codec})
			if err != nil || got.Codec.Name != m.Codec.Name || got.Codec.PayloadType != m.Codec.PayloadType ||
				got.DTMFPayloadType != m.DTMFPayloadType || back.remote.Port() != 30000 {
				t.Fatalf("round trip: %+v, %v", got, err)
			}
		})
	}
}

func TestOfferSDP(t *testing.T) {
	tests := []struct {
		name     string
		codecs   []string
		contains []string
		absent   []string
	}{
		{
			name:     "G.711 in the given order, one telephone-event",
			codecs:   []string{"pcma", "PCMU"},
			contains: []string{"m=audio 4000 RTP/AVP 8 0 101\r\n", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20"},
			absent:   []string{"opus", "/48000"},
		},
		{
			name:   "opus alone: PT 111, /2, our fmtp, telephone-event/48000",
			codecs: []string{"opus"},
			contains: []string{"m=audio 4000 RTP/AVP 111 101\r\n", "a=rtpmap:111 opus/48000/2",
				"a=fmtp:111 maxplaybackrate=48000; useinbandfec=1", "a=rtpmap:101 telephone-event/48000"},
			absent: []string{"telephone-event/8000"},
		},
		{
			name:     "G.722: static 9, rtpmap at 8000 (RFC 3551's quirk)",
			codecs:   []string{"G722"},
			contains: []string{"m=audio 4000 RTP/AVP 9 101\r\n", "a=rtpmap:9 G722/8000", "a=rtpmap:101 telephone-event/8000"},
		},
		{
			name:   "opus then PCMU: a telephone-event per clock rate",
			codecs: []string{"OPUS", "PCMU"},
			contains: []string{"m=audio 4000 RTP/AVP 111 0 101 102\r\n", "a=rtpmap:101 telephone-event/48000",
				"a=rtpmap:102 telephone-event/8000", "a=fmtp:102 0-16"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codecs, err := offerCodecs(tt.codecs)
			if err != nil {
				t.Fatal(err)
			}
			body, err := buildSDP(sdpParams{sessionID: 1, version: 1, ip: netip.MustParseAddr("127.0.0.1"), port: 4000,
				codecs: codecs, dtmfPT: 101, ptime: 20 * time.Millisecond, direction: "sendrecv"})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.contains {
				if !strings.Contains(string(body), want) {
					t.Errorf("offer lacks %q:\n%s", want, body)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(string(body), a) {
					t.Errorf("offer has %q:\n%s", a, body)
				}
			}
			// Offered to ourselves, our own preference order picks the first codec.
			o, err := parseSDP(body)
			if err != nil {
				t.Fatal(err)
			}
			m, err := negotiate(o, tt.codecs)
			if err != nil || m.Codec.Name != codecs[0].Name || m.Codec.PayloadType != codecs[0].PayloadType || m.DTMFPayloadType != 101 {
				t.Fatalf("self-negotiation: %+v, %v", m, err)
			}
		})
	}
	if _, err := offerCodecs([]string{"G729"}); err == nil {
		t.Error("G729 accepted for an offer")
	}
}

// The answer to our opus+PCMU offer that picks opus gives its PT, fmtp and
// the telephone-event at 48 kHz.
func TestMediaFromOpusAnswer(t *testing.T) {
	offered, err := offerCodecs([]string{"opus", "PCMU"})
	if err != nil {
		t.Fatal(err)
	}
	answer := sdpOffer("m=audio 6000 RTP/AVP 111 101", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 useinbandfec=1; maxplaybackrate=24000",
		"a=rtpmap:101 telephone-event/48000", "a=fmtp:101 0-15")
	m, err := mediaFromAnswer(answer, offered)
	if err != nil {
		t.Fatal(err)
	}
	want := Media{Remote: netip.MustParseAddrPort("10.0.0.5:6000"),
		Codec:           Codec{Name: "opus", PayloadType: 111, ClockRate: 48000, Fmtp: "useinbandfec=1; maxplaybackrate=24000"},
		DTMFPayloadType: 101, Ptime: 20 * time.Millisecond, Direction: "sendrecv"}
	if m != want {
		t.Fatalf("media = %+v\nwant    %+v", m, want)
	}
}
