package sip

import (
	"testing"
	"time"
)

func TestParseDTMFInfo(t *testing.T) {
	for _, tc := range []struct {
		ctype, body string
		want        rune // 0: an error
	}{
		{infoDTMFRelay, "Signal=5\r\nDuration=160\r\n", '5'},
		{infoDTMFRelay, "Signal=#\r\nDuration=250", '#'},
		{infoDTMFRelay, "Duration=100\r\nsignal = *\r\n", '*'},
		{infoDTMFRelay, "Signal=10\r\nDuration=160", '*'},
		{infoDTMFRelay, "Signal=11\r\nDuration=160", '#'},
		{infoDTMFRelay, "Signal=d\nDuration=160", 'D'},
		{infoDTMFRelay, "Signal=0", '0'},
		{infoDTMFRelay, "Signal=\r\nDuration=160", 0},
		{infoDTMFRelay, "Duration=160", 0},
		{infoDTMFRelay, "Signal=16", 0}, // flash
		{infoDTMFRelay, "Signal=55", 0},
		{infoDTMF, "7", '7'},
		{infoDTMF, " B\r\n", 'B'},
		{infoDTMF, "11", '#'},
		{infoDTMF, "x", 0},
		{infoDTMF, "12345", 0},
	} {
		var got rune
		var err error
		if tc.ctype == infoDTMFRelay {
			got, err = parseDTMFRelay(tc.body)
		} else {
			got, err = parseDTMFDigit(tc.body)
		}
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%s %q: got %q, want an error", tc.ctype, tc.body, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %q: got %q, %v; want %q", tc.ctype, tc.body, got, err, tc.want)
		}
	}
	for in, want := range map[string]string{
		"application/dtmf-relay":              infoDTMFRelay,
		"Application/DTMF-Relay ; charset=x":  infoDTMFRelay,
		" application/dtmf":                   infoDTMF,
		"application/media_control+xml;a=b;c": "application/media_control+xml",
	} {
		if got := mediaType(in); got != want {
			t.Errorf("mediaType(%q) = %q, want %q", in, got, want)
		}
	}
}

// sipp sends INFO digits within the dialog (dtmf-relay and dtmf bodies, a bad
// digit, an unknown body, an empty keep-alive); the call gets each digit once,
// in order, and sipp checks every status code.
func TestSippInfoDTMF(t *testing.T) {
	t.Parallel()
	r := newRecord()
	digits := make(chan string, 1)
	s := testServer(t, r.handler(func(c *InboundCall) {
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
			return
		}
		var got []rune
		for {
			select {
			case d := <-c.DTMF():
				got = append(got, d)
				continue
			case <-c.Context().Done():
			}
			break
		}
		// Digits answered before the BYE are already queued.
		for len(c.DTMF()) > 0 {
			got = append(got, <-c.DTMF())
		}
		digits <- string(got)
	}))
	if err := sippScenario(t, s.Addr("udp"), "info_dtmf.xml", "-s", "1000"); err != nil {
		t.Fatalf("scenario: %v", err)
	}
	r.waitEnded(t)
	r.check(t)
	select {
	case got := <-digits:
		if got != "5#9*#" {
			t.Errorf("INFO digits %q, want %q", got, "5#9*#")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not report")
	}
}
