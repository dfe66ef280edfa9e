package agent

import (
	"testing"
	"unsafe"

	"github.com/switchboard-voip/switchboard/media/warm"
)

// A Twilio session's hot memory, which the frame clock warms before its
// frame, is what Audio touches: the session, its connection and the µ-law
// it gathers into.
func TestTwilioHot(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	s, c := startTwilio(t, b, newLiveControls(), nil)
	defer c.CloseNow()
	defer s.Close()
	ts := s.(*twilioSession)
	s.Audio(make([]int16, 80), 8000) // half a chunk: the µ-law buffer holds it
	spans := ts.Hot(nil)
	for name, p := range map[string]unsafe.Pointer{
		"session":        unsafe.Pointer(ts),
		"connection":     unsafe.Pointer(ts.w),
		"socket":         unsafe.Pointer(ts.w.raw),
		"µ-law gathered": unsafe.Pointer(&ts.ulaw[0]),
	} {
		if !warm.Covers(spans, p) {
			t.Errorf("the %s is not in the Twilio session's hot spans", name)
		}
	}
	e := &echoSession{ctl: newLiveControls()}
	if spans := e.Hot(nil); !warm.Covers(spans, unsafe.Pointer(e)) || !warm.Covers(spans, warm.Data(e.ctl, 1).P) {
		t.Error("the echo session or its controls are not in its hot spans")
	}
}
