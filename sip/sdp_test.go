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
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{"PCMU", 0, 8000},
				DTMFPayloadType: 101, Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "our preference wins over the offer's order",
			offer: sdpOffer("m=audio 4000 RTP/AVP 0 8"),
			prefs: []string{"PCMA", "PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{"PCMA", 8, 8000},
				Ptime: 20 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "dynamic payload numbers and ptime kept",
			offer: sdpOffer("m=audio 4000 RTP/AVP 96 97", "a=rtpmap:96 pcmu/8000", "a=rtpmap:97 telephone-event/8000", "a=ptime:30"),
			prefs: []string{"PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:4000"), Codec: Codec{"PCMU", 96, 8000},
				DTMFPayloadType: 97, Ptime: 30 * time.Millisecond, Direction: "sendrecv"},
		},
		{
			name:  "sendonly mirrors to recvonly, media-level c= wins",
			offer: sdpOffer("m=audio 5000 RTP/AVP 8", "c=IN IP4 192.0.2.1", "a=sendonly"),
			prefs: []string{"PCMU", "PCMA"},
			want: Media{Remote: netip.MustParseAddrPort("192.0.2.1:5000"), Codec: Codec{"PCMA", 8, 8000},
				Ptime: 20 * time.Millisecond, Direction: "recvonly"},
		},
		{
			name:  "recvonly mirrors to sendonly",
			offer: sdpOffer("m=audio 5000 RTP/AVP 0", "a=recvonly"),
			prefs: []string{"PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:5000"), Codec: Codec{"PCMU", 0, 8000},
				Ptime: 20 * time.Millisecond, Direction: "sendonly"},
		},
		{
			name:  "session-level inactive stays inactive",
			offer: sdpOffer("a=inactive", "m=audio 5000 RTP/AVP 0"),
			prefs: []string{"PCMU"},
			want: Media{Remote: netip.MustParseAddrPort("10.0.0.5:5000"), Codec: Codec{"PCMU", 0, 8000},
				Ptime: 20 * time.Millisecond, Direction: "inactive"},
		},
		{
			name:    "G.729 only",
			offer:   sdpOffer("m=audio 4000 RTP/AVP 18", "a=rtpmap:18 G729/8000"),
			prefs:   []string{"PCMU", "PCMA"},
			wantErr: errSDPNoCommonCodec,
		},
		{
			name:    "SRTP profile refused",
			offer:   sdpOffer("m=audio 4000 RTP/SAVP 0"),
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
			m, err := negotiate(o, []string{"PCMU", "PCMA"})
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
			if got, err := mediaFromAnswer(body, []Codec{m.Codec}); err != nil || got.Codec != m.Codec || back.remote.Port() != 30000 {
				t.Fatalf("round trip: %+v, %v", got, err)
			}
		})
	}
}

func TestOfferSDP(t *testing.T) {
	codecs, err := offerCodecs([]string{"pcma", "PCMU"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := buildSDP(sdpParams{sessionID: 1, version: 1, ip: netip.MustParseAddr("127.0.0.1"), port: 4000,
		codecs: codecs, dtmfPT: 101, ptime: 20 * time.Millisecond, direction: "sendrecv"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"m=audio 4000 RTP/AVP 8 0 101\r\n", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("offer lacks %q:\n%s", want, body)
		}
	}
	if _, err := offerCodecs([]string{"G729"}); err == nil {
		t.Error("G729 accepted for an offer")
	}
}
