package sip

import (
	"testing"
	"time"
)

func TestByeMemoryExpires(t *testing.T) {
	var b byeMemory
	t0 := time.Unix(1000, 0)
	keep := 32 * time.Second
	k1 := dialogKey{"c1", "a", "b"}
	k2 := dialogKey{"c2", "a", "b"}
	b.add(k1, 2, t0, keep)
	b.add(k2, 2, t0.Add(10*time.Second), keep)
	if !b.ended(k1, 2, t0.Add(31*time.Second), keep) || b.ended(dialogKey{"c3", "a", "b"}, 2, t0, keep) {
		t.Fatal("k1 must be remembered for Timer J, and nothing else")
	}
	if b.ended(k1, 3, t0.Add(time.Second), keep) {
		t.Fatal("a new BYE (another CSeq) is no retransmission")
	}
	if b.ended(k1, 2, t0.Add(33*time.Second), keep) {
		t.Fatal("k1 remembered past Timer J")
	}
	for i := range 1000 { // a busy minute: expired entries are dropped as new ones come
		b.add(dialogKey{callID: string(rune('A' + i%26)), localTag: string(rune(i))}, 1, t0.Add(time.Duration(40+i)*100*time.Millisecond), keep)
	}
	if b.ended(k2, 2, t0.Add(140*time.Second), keep) {
		t.Fatal("k2 outlived Timer J")
	}
	if n := len(b.keys); n > 400 { // 32 s of entries at 10 a second, plus slack
		t.Fatalf("%d dialogs remembered; expired ones are not dropped", n)
	}
}
