package dialplan

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones resolve the same on a host without /usr/share/zoneinfo

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// Window is a weekly time window in a time zone: from From to To (minutes
// after midnight, To exclusive) on each of Days. A window that crosses
// midnight (written to: "06:00+1") has To > 1440 and belongs to the day it
// starts on: {days: [fri], from: "22:00", to: "06:00+1"} is Friday 22:00 to
// Saturday 06:00.
type Window struct {
	Days     [7]bool // indexed by time.Weekday
	From, To int
	TZ       *time.Location
	Line     int
}

const (
	minutesPerDay  = 24 * 60
	minutesPerWeek = 7 * minutesPerDay
)

var (
	windowKeys = []string{"days", "from", "to", "tz"}
	dayNames   = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
)

// Contains reports whether t falls within the window, in the window's zone.
func (w *Window) Contains(t time.Time) bool {
	lt := t.In(w.TZ)
	m := lt.Hour()*60 + lt.Minute()
	d := lt.Weekday()
	if w.Days[d] && m >= w.From && m < min(w.To, minutesPerDay) {
		return true
	}
	return w.To > minutesPerDay && w.Days[(d+6)%7] && m < w.To-minutesPerDay
}

func (w *Window) String() string {
	var days []string
	for i := range 7 {
		if d := (i + 1) % 7; w.Days[d] { // Monday first
			days = append(days, dayNames[d])
		}
	}
	to := clock(w.To % minutesPerDay)
	switch {
	case w.To == minutesPerDay:
		to = "24:00"
	case w.To > minutesPerDay:
		to += "+1"
	}
	return fmt.Sprintf("%s %s-%s %s", strings.Join(days, ","), clock(w.From), to, w.TZ)
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// spans are the window's minutes of the week (Sunday 00:00 = 0), split at
// the week's end.
func (w *Window) spans() [][2]int {
	var out [][2]int
	for d := range 7 {
		if !w.Days[d] {
			continue
		}
		a, b := d*minutesPerDay+w.From, d*minutesPerDay+w.To
		if b > minutesPerWeek {
			out = append(out, [2]int{a, minutesPerWeek}, [2]int{0, b - minutesPerWeek})
		} else {
			out = append(out, [2]int{a, b})
		}
	}
	return out
}

// overlap returns the first minute of the week both windows hold, or -1.
func overlap(a, b *Window) int {
	for _, x := range a.spans() {
		for _, y := range b.spans() {
			if lo, hi := max(x[0], y[0]), min(x[1], y[1]); lo < hi {
				return lo
			}
		}
	}
	return -1
}

// windows reads time: one window or a list of them (any one matches).
func (d *decoder) windows(n *yaml.Node) ([]*Window, bool) {
	n = yamlfile.Resolve(n)
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		if len(n.Content) == 0 {
			d.Errorf(n, "match.time: empty list; leave the key out to match any time")
			return nil, false
		}
		items = n.Content
	}
	ok := true
	var out []*Window
	for _, it := range items {
		w, valid := d.window(yamlfile.Resolve(it))
		if !valid {
			ok = false
			continue
		}
		for _, prev := range out {
			if prev.TZ.String() != w.TZ.String() {
				continue // different zones drift apart with daylight saving: no static check
			}
			if m := overlap(prev, w); m >= 0 {
				d.Errorf(it, "match.time: window overlaps the one at line %d (both hold %s %s); merge them",
					prev.Line, dayNames[m/minutesPerDay], clock(m%minutesPerDay))
				ok = false
				break
			}
		}
		out = append(out, w)
	}
	return out, ok
}

const windowWant = `a mapping {days: [mon-fri], from: "09:00", to: "17:30", tz: Europe/Berlin}`

func (d *decoder) window(n *yaml.Node) (*Window, bool) {
	fs, ok := d.Mapping(n, "match.time", windowWant, windowKeys)
	if !ok {
		return nil, false
	}
	w := &Window{Line: n.Line}
	if f, has := fs.Get("days"); has {
		ok = d.days(w, f.Value) && ok
	} else {
		w.Days = [7]bool{true, true, true, true, true, true, true}
	}
	from, to := -1, -1
	var toNode *yaml.Node
	for _, key := range []string{"from", "to"} {
		f, has := fs.Get(key)
		if !has {
			d.Errorf(n, "match.time needs %s: a time of day \"HH:MM\"", key)
			ok = false
			continue
		}
		s, valid := d.Str(f.Value, "match.time."+key)
		if !valid {
			ok = false
			continue
		}
		m, next, err := parseClock(s)
		switch {
		case err != nil:
			d.Errorf(f.Value, "match.time.%s: %q %v; want \"HH:MM\" (24-hour)", key, s, err)
			ok = false
		case key == "from" && (next || m == minutesPerDay):
			d.Errorf(f.Value, "match.time.from: %q; want a time of day 00:00–23:59", s)
			ok = false
		case key == "from":
			from = m
		default:
			if next {
				m += minutesPerDay
			}
			to, toNode = m, f.Value
		}
	}
	if f, has := fs.Get("tz"); !has {
		d.Errorf(n, "match.time needs tz: an IANA time zone such as Europe/Berlin, or UTC")
		ok = false
	} else if s, valid := d.Str(f.Value, "match.time.tz"); !valid {
		ok = false
	} else if loc, err := time.LoadLocation(s); err != nil || s == "" || s == "Local" {
		d.Errorf(f.Value, "match.time.tz: unknown time zone %q; want an IANA name such as Europe/Berlin, America/New_York or UTC", s)
		ok = false
	} else {
		w.TZ = loc
	}
	if from >= 0 && to >= 0 {
		switch {
		case to == from:
			d.Errorf(toNode, "match.time: from and to are both %s, an empty window; for all day write from: \"00:00\", to: \"24:00\"", clock(from))
			ok = false
		case to < from:
			d.Errorf(toNode, "match.time.to: %s is before from %s; for a window that crosses midnight write to: \"%s+1\"",
				clock(to), clock(from), clock(to))
			ok = false
		case to > minutesPerDay && to-minutesPerDay >= from:
			d.Errorf(toNode, "match.time.to: %s+1 is 24 hours or more after from %s; \"+1\" is for a window that crosses midnight, so to must be before from",
				clock(to-minutesPerDay), clock(from))
			ok = false
		}
	}
	w.From, w.To = from, to
	return w, ok
}

// parseClock reads "HH:MM", "24:00" or "HH:MM+1" (the next day).
func parseClock(s string) (minutes int, nextDay bool, err error) {
	t, nextDay := strings.CutSuffix(s, "+1")
	h, m, found := strings.Cut(t, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	switch {
	case !found || err1 != nil || err2 != nil || len(h) != 2 || len(m) != 2:
		return 0, false, fmt.Errorf("is not a time of day")
	case hh == 24 && mm == 0 && !nextDay:
		return minutesPerDay, false, nil
	case hh > 23 || mm > 59:
		return 0, false, fmt.Errorf("is out of range")
	}
	return hh*60 + mm, nextDay, nil
}

func (d *decoder) days(w *Window, n *yaml.Node) bool {
	items, ok := d.strings1(n, "match.time.days")
	for _, it := range items {
		s, valid := d.Str(it, "match.time.days")
		if !valid {
			ok = false
			continue
		}
		a, b, isRange := strings.Cut(s, "-")
		first, fok := dayIndex(a)
		last, lok := first, fok
		if isRange {
			last, lok = dayIndex(b)
		}
		if !fok || !lok {
			d.Errorf(it, "match.time.days: unknown day %q; want mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri", s)
			ok = false
			continue
		}
		for i := first; ; i = (i + 1) % 7 { // a range may wrap: fri-mon
			if w.Days[i] {
				d.Errorf(it, "match.time.days: %s is listed twice", dayNames[i])
				ok = false
				break
			}
			w.Days[i] = true
			if i == last {
				break
			}
		}
	}
	return ok
}

func dayIndex(s string) (int, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, n := range dayNames {
		if s == n || s == strings.ToLower(time.Weekday(i).String()) {
			return i, true
		}
	}
	return 0, false
}
