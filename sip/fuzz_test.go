package sip

import (
	"net/netip"
	"strings"
	"testing"
)

// Any SDP body an INVITE could carry: parse, negotiate and answer never panic, and an
// agreed codec is one we offered to take.
func FuzzNegotiate(f *testing.F) {
	f.Add([]byte(pcmuOffer))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:30\r\na=sendonly\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=video 4000 RTP/AVP 31\r\nm=audio 0 RTP/SAVP 0\r\n"))
	f.Add([]byte("v=0\r\nm=audio 99999 RTP/AVP 300\r\na=rtpmap:300 PCMU/0\r\n"))
	prefs := []string{"PCMU", "PCMA"}
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := parseSDP(body)
		if err != nil {
			return
		}
		m, err := negotiate(o, prefs)
		if err != nil {
			return
		}
		if !strings.EqualFold(m.Codec.Name, "PCMU") && !strings.EqualFold(m.Codec.Name, "PCMA") {
			t.Fatalf("agreed on %q, not one of %v", m.Codec.Name, prefs)
		}
		if _, err := answerSDP(o, m, netip.MustParseAddrPort("127.0.0.1:30000"), netip.MustParseAddr("127.0.0.1"), 1, 1); err != nil {
			t.Logf("answer: %v", err)
		}
	})
}
