package media

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/switchboard-voip/switchboard/media/warm"
)

// What the frame clock warms for a stream must be what its frame touches: the
// stream, the jitter buffer, the concealment history, the socket and the send
// buffer. A span that wandered off would only cost CPU, so this is its test.
func TestStreamHot(t *testing.T) {
	s, err := newTestPool(t, 43300).Open(StreamConfig{Codec: PCMU})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetRemote(netip.MustParseAddrPort("127.0.0.1:9"))
	if err := s.WriteFrame(make([]int16, 160), true); err != nil {
		t.Fatal(err)
	}
	spans := s.Hot(nil)
	for name, p := range map[string]unsafe.Pointer{
		"stream's receive state": unsafe.Pointer(&s.rx),
		"stream's send state":    unsafe.Pointer(&s.tx),
		"jitter buffer's slots":  unsafe.Pointer(&s.jb.slots[jbSlots-1]),
		"concealment":            unsafe.Pointer(s.jb.plc),
		"concealment history":    unsafe.Pointer(&s.jb.plc.hist[len(s.jb.plc.hist)-1]),
		"socket":                 unsafe.Pointer(s.conn),
		"send buffer":            unsafe.Pointer(&s.tx.buf[0]),
		"remote address":         unsafe.Pointer(s.remote.Load()),
	} {
		if !warm.Covers(spans, p) {
			t.Errorf("the %s is not in the stream's hot spans", name)
		}
	}
	if a := testing.AllocsPerRun(50, func() { spans = s.Hot(spans[:0]) }); a != 0 {
		t.Errorf("Hot allocates %v times into a slice with room", a)
	}
	warm.Spans(spans)
}
