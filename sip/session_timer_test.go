package sip

import (
	"testing"
	"time"
)

// shortTimers gives a test server a 2 s Min-SE, below RFC 4028's 90 s floor, so
// refreshes and expiry happen within seconds.
func shortTimers(cfg *Config) { cfg.MinSE = 2 * time.Second }

// The caller is the refresher: one UPDATE refresh is answered with the
// interval, and when refreshes stop the gateway ends the call with BYE no
// sooner than the interval allows (sipp fails on a BYE during its pause).
func TestSippSessionTimerExpires(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r), shortTimers)
	start := time.Now()
	if err := sippScenario(t, s.Addr("udp"), "session_uac_refresh.xml", "-s", "1000"); err != nil {
		t.Fatalf("scenario: %v", err)
	}
	c := r.waitEnded(t)
	r.check(t)
	if by, cause := c.EndCause(); by != "gateway" || cause != sessionExpired {
		t.Errorf("EndCause = %q %q, want gateway %q", by, cause, sessionExpired)
	}
	// Refresh at 1.5 s, then 4 s - min(32 s, 4/3 s) ≈ 2.67 s more.
	if d := time.Since(start); d < 4*time.Second || d > 8*time.Second {
		t.Errorf("call lasted %v, want about 4.2 s (refresh at 1.5 s + 2.67 s)", d)
	}
}

// The caller asks the gateway to refresh: it sends UPDATEs at half the
// interval, which sipp checks and answers twice before hanging up.
func TestSippSessionTimerWeRefresh(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r), shortTimers)
	if err := sippScenario(t, s.Addr("udp"), "session_uas_refresh.xml", "-s", "1000"); err != nil {
		t.Fatalf("scenario: %v", err)
	}
	c := r.waitEnded(t)
	r.check(t)
	if by, cause := c.EndCause(); by != "caller" || cause != "bye" {
		t.Errorf("EndCause = %q %q, want caller bye", by, cause)
	}
}

// A Session-Expires below our Min-SE gets 422 with our Min-SE, and no call.
func TestSippSessionTimerTooSmall(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r), shortTimers)
	if err := sippScenario(t, s.Addr("udp"), "session_too_small.xml", "-s", "1000"); err != nil {
		t.Fatalf("scenario: %v", err)
	}
	select {
	case c := <-r.started:
		t.Fatalf("a call was handed to the handler: %s", c.CallID())
	case <-time.After(200 * time.Millisecond):
	}
}
