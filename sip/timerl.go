package sip

import (
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/emiago/sipgo/sip"
)

// sipgo v1.7.2 arms Timer L (64*T1) when a 2xx leaves an INVITE server
// transaction and does not stop it when the transaction is terminated, so
// the timer's closure keeps the transaction, the INVITE and our responses
// for 32 s after we let it go: at 1,000 calls/s some 32,000 transactions,
// most of the heap (see docs/benchmarks.md). sipgoTimerL reaches the
// unexported timer by reflection, under the transaction's own lock, so that
// the transaction's end can stop it; with a sipgo that lacks the fields it
// finds nothing and TestTimerLStoppedAfterAck fails. Drop it once sipgo stops
// the timer itself.

// sipgoTimerL is the INVITE server transaction's Timer L, nil before a 2xx
// or when sipgo has no such field.
func sipgoTimerL(tx sip.ServerTransaction) *time.Timer {
	if o, ok := tx.(observedTx); ok {
		tx = o.ServerTransaction
	}
	stx, ok := tx.(*sip.ServerTx)
	if !ok || stx == nil {
		return nil
	}
	v := reflect.ValueOf(stx).Elem()
	f, mu := v.FieldByName("timer_l"), v.FieldByName("mu") // mu guards the timers
	if !f.IsValid() || f.Type() != reflect.TypeFor[*time.Timer]() ||
		!mu.IsValid() || mu.Type() != reflect.TypeFor[sync.Mutex]() {
		return nil
	}
	lock := (*sync.Mutex)(unsafe.Pointer(mu.UnsafeAddr()))
	lock.Lock()
	defer lock.Unlock()
	return *(**time.Timer)(unsafe.Pointer(f.UnsafeAddr()))
}

// stopTimerL stops tx's Timer L if sipgo has armed it.
func stopTimerL(tx sip.ServerTransaction) {
	if t := sipgoTimerL(tx); t != nil {
		t.Stop()
	}
}
