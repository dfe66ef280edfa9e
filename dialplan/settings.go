package dialplan

import (
	"time"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// Bounds of the per-route durations: ring stays under a carrier's INVITE
// timer; a call cap under a day catches a typo such as 30h for 30m.
const (
	maxRing        = 30 * time.Second
	maxMaxDuration = 24 * time.Hour
)

// settings reads a route's record, ring and max_duration.
func (d *decoder) settings(r *Route, fs yamlfile.Fields) bool {
	ok := d.record(r, fs)
	if f, has := fs.Get("ring"); has {
		v, valid := d.duration(f, 0, maxRing, `a duration such as "2s", 0–30s`)
		ok = ok && valid
		r.Ring = v
	}
	if f, has := fs.Get("max_duration"); has {
		v, valid := d.duration(f, time.Second, maxMaxDuration, `a duration such as "30m" or "1h30m", 1s–24h`)
		ok = ok && valid
		r.MaxDuration = v
	}
	if f, has := fs.Get("transfer_method"); has {
		v, valid := d.Str(f.Value, "transfer_method")
		if valid && v != TransferRefer && v != TransferBridge {
			d.Errorf(f.Value, "transfer_method: %q; want %s or %s", v, TransferRefer, TransferBridge)
			valid = false
		}
		ok = ok && valid
		r.TransferMethod = v
	}
	return ok
}

// How an agent's transfer is carried out (transfer_method).
const (
	TransferRefer  = "refer"  // REFER to the caller's side; bridge if it does not take REFER
	TransferBridge = "bridge" // dial the target as a second leg and bridge it (B2BUA)
)

// duration reads a Go duration within [lo, hi].
func (d *decoder) duration(f yamlfile.Field, lo, hi time.Duration, want string) (time.Duration, bool) {
	s, ok := d.Str(f.Value, f.Name)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < lo || v > hi {
		d.Errorf(f.Value, "%s: %q; want %s", f.Name, s, want)
		return 0, false
	}
	return v, true
}
