package cdr

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// exported is a record as CSV and JSON show it; fields follow Header's order.
type exported struct {
	ID          string  `json:"id"`
	CallID      string  `json:"call_id"`
	Node        string  `json:"node"`
	Trunk       string  `json:"trunk"`
	From        string  `json:"from"`
	To          string  `json:"to"`
	Route       string  `json:"route"`
	TargetType  string  `json:"target_type"`
	Target      string  `json:"target"`
	Start       string  `json:"start"`
	Answer      string  `json:"answer,omitempty"`
	End         string  `json:"end,omitempty"`
	DurationMs  int64   `json:"duration_ms"`
	EndedBy     string  `json:"ended_by"`
	Cause       string  `json:"cause"`
	Status      int     `json:"sip_status"`
	Abnormal    bool    `json:"abnormal"`
	PacketsIn   uint64  `json:"packets_in"`
	PacketsOut  uint64  `json:"packets_out"`
	PacketsLost uint64  `json:"packets_lost"`
	PacketsLate uint64  `json:"packets_late"`
	JitterMs    float64 `json:"jitter_ms"`
	MOS         float64 `json:"mos"`
	Recording   string  `json:"recording"`
}

// Header is the CSV header row, the JSON keys in the same order.
var Header = []string{
	"id", "call_id", "node", "trunk", "from", "to", "route", "target_type", "target",
	"start", "answer", "end", "duration_ms", "ended_by", "cause", "sip_status", "abnormal",
	"packets_in", "packets_out", "packets_lost", "packets_late", "jitter_ms", "mos", "recording",
}

const stamp = "2006-01-02T15:04:05.000Z07:00"

func stampOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(stamp)
}

func export(r *Record) exported {
	return exported{
		ID: r.ID, CallID: r.CallID, Node: r.Node, Trunk: r.Trunk, From: r.From, To: r.To,
		Route: r.Route, TargetType: r.TargetType, Target: r.Target,
		Start: stampOf(r.Start), Answer: stampOf(r.Answer), End: stampOf(r.End),
		DurationMs: r.Duration.Milliseconds(), EndedBy: r.EndedBy, Cause: r.Cause,
		Status: r.Status, Abnormal: r.Abnormal,
		PacketsIn: r.Quality.PacketsIn, PacketsOut: r.Quality.PacketsOut,
		PacketsLost: r.Quality.Lost, PacketsLate: r.Quality.Late,
		JitterMs: r.Quality.JitterMs, MOS: r.Quality.MOS, Recording: r.Recording,
	}
}

func (e exported) row() []string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return []string{
		e.ID, e.CallID, e.Node, e.Trunk, e.From, e.To, e.Route, e.TargetType, e.Target,
		e.Start, e.Answer, e.End, strconv.FormatInt(e.DurationMs, 10), e.EndedBy, e.Cause,
		strconv.Itoa(e.Status), strconv.FormatBool(e.Abnormal),
		u(e.PacketsIn), u(e.PacketsOut), u(e.PacketsLost), u(e.PacketsLate), f(e.JitterMs), f(e.MOS),
		e.Recording,
	}
}

// WriteCSV writes a header row and one row per record; times are UTC RFC 3339.
func WriteCSV(w io.Writer, recs []Record) error {
	cw := csv.NewWriter(w)
	cw.Write(Header)
	for i := range recs {
		cw.Write(export(&recs[i]).row())
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the records as a JSON array of objects keyed as Header.
func WriteJSON(w io.Writer, recs []Record) error {
	out := make([]exported, len(recs))
	for i := range recs {
		out[i] = export(&recs[i])
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteTable writes the records for a person to read, times in loc.
func WriteTable(w io.Writer, recs []Record, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tFROM\tTO\tROUTE\tTARGET\tSTATUS\tTALK\tENDED BY\tCAUSE\tRTP IN/OUT/LOST\tID")
	for i := range recs {
		r := &recs[i]
		target := r.TargetType
		if r.Target != "" {
			target += ":" + r.Target
		}
		talk, by, cause := "-", r.EndedBy, r.Cause
		if !r.Answer.IsZero() {
			talk = r.Duration.Round(100 * time.Millisecond).String()
		}
		if r.Open() {
			by, cause = "-", "(in progress)"
			if !r.Answer.IsZero() {
				talk = "-"
			}
		}
		if r.Abnormal {
			cause += " (abnormal)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d/%d\t%s\n",
			r.Start.In(loc).Format("2006-01-02 15:04:05"), dash(r.From), dash(r.To), dash(r.Route), dash(target),
			status(r.Status), talk, dash(by), dash(oneLine(cause)),
			r.Quality.PacketsIn, r.Quality.PacketsOut, r.Quality.Lost, r.ID)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func status(s int) string {
	if s == 0 {
		return "-"
	}
	return strconv.Itoa(s)
}

// oneLine keeps a cause from breaking the table.
func oneLine(s string) string {
	s = strings.NewReplacer("\n", " ", "\t", " ").Replace(s)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
