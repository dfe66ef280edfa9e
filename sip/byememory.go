package sip

import (
	"strings"
	"sync"
	"time"
)

// byeMemory remembers, for Timer J (64*T1, RFC 3261 17.2.2), the dialogs a
// caller's BYE ended, so that a retransmitted BYE gets its 200 again while
// sipgo's whole transaction (some 11 KB) is let go at once: at 1,000 calls/s
// those transactions would hold a third of a gigabyte. Safe for concurrent use.
type byeMemory struct {
	mu   sync.Mutex
	keys map[dialogKey]endedDialog
	fifo []endedDialog // in the order they ended, for expiry
	head int
}

type endedDialog struct {
	key  dialogKey
	cseq uint32 // of the BYE: only its retransmissions get the 200 again
	at   time.Time
}

// add remembers k, ended at now by the BYE with CSeq cseq, for keep; older
// entries are forgotten.
func (b *byeMemory) add(k dialogKey, cseq uint32, now time.Time, keep time.Duration) {
	k = dialogKey{strings.Clone(k.callID), strings.Clone(k.localTag), strings.Clone(k.remoteTag)} // not the request's buffer
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys == nil {
		b.keys = make(map[dialogKey]endedDialog)
	}
	for b.head < len(b.fifo) && now.Sub(b.fifo[b.head].at) > keep {
		e := b.fifo[b.head]
		if b.keys[e.key].at == e.at {
			delete(b.keys, e.key)
		}
		b.fifo[b.head] = endedDialog{}
		b.head++
	}
	if b.head > len(b.fifo)/2 {
		b.fifo = append(b.fifo[:0], b.fifo[b.head:]...)
		b.head = 0
	}
	e := endedDialog{k, cseq, now}
	b.keys[k] = e
	b.fifo = append(b.fifo, e)
}

// ended reports whether the BYE with CSeq cseq ended k less than keep before
// now: a retransmission of it.
func (b *byeMemory) ended(k dialogKey, cseq uint32, now time.Time, keep time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.keys[k]
	return ok && e.cseq == cseq && now.Sub(e.at) <= keep
}
