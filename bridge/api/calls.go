package api

import (
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/switchboard-voip/switchboard/bridge"
)

func (s *Server) callRoutes() {
	s.Handle("GET /v1/calls", http.HandlerFunc(s.listCalls))
	s.Handle("DELETE /v1/calls/{id}", http.HandlerFunc(s.hangupCall))
}

// callJSON is one call in progress as GET /v1/calls shows it.
type callJSON struct {
	ID        string       `json:"id"`
	RecordID  string       `json:"record_id,omitempty"`
	Trunk     string       `json:"trunk"`
	From      string       `json:"from"`
	To        string       `json:"to"`
	Route     string       `json:"route"`
	Target    string       `json:"target"`
	State     string       `json:"state"`
	Start     time.Time    `json:"start"`
	Answer    *time.Time   `json:"answer,omitempty"`
	DurationS float64      `json:"duration_s"` // since answer; 0 before
	Codec     string       `json:"codec,omitempty"`
	Quality   *qualityJSON `json:"quality,omitempty"`
}

// qualityJSON is a call's live media quality: what it received from the caller.
type qualityJSON struct {
	PacketsIn   uint64  `json:"packets_in"`
	PacketsOut  uint64  `json:"packets_out"`
	Lost        uint64  `json:"lost"`
	Late        uint64  `json:"late"`
	LossRatio   float64 `json:"loss_ratio"`
	JitterMs    float64 `json:"jitter_ms"`
	RTTMs       float64 `json:"rtt_ms"`
	ConcealedMs uint64  `json:"concealed_ms"`
	MOS         float64 `json:"mos"`
	R           float64 `json:"r"`
}

func (s *Server) listCalls(w http.ResponseWriter, _ *http.Request) {
	calls := s.cfg.Gateway.Calls()
	out := make([]callJSON, 0, len(calls))
	now := time.Now()
	for _, c := range calls {
		j := callJSON{ID: c.ID, RecordID: c.RecordID, Trunk: c.Trunk, From: c.From, To: c.To, Route: c.Route,
			Target: c.Target, State: c.State, Start: c.Start.UTC(), Codec: c.Codec}
		if !c.Answer.IsZero() {
			a := c.Answer.UTC()
			j.Answer, j.DurationS = &a, round(now.Sub(c.Answer).Seconds(), 3)
		}
		if c.Codec != "" {
			st, q := c.Stats, c.Quality
			j.Quality = &qualityJSON{PacketsIn: st.PacketsIn, PacketsOut: st.PacketsOut, Lost: st.Lost, Late: st.Late,
				LossRatio: round(q.LossRatio, 4), JitterMs: ms(q.Jitter), RTTMs: ms(q.RTT), ConcealedMs: st.ConcealedMs,
				MOS: round(q.MOS, 2), R: round(q.R, 1)}
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": out})
}

// hangupCall ends a call: BYE if answered, else a final error response. 202: the
// hang-up is under way (its record says "hung up by admin API").
func (s *Server) hangupCall(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.cfg.Gateway.Hangup(id, "hung up by admin API")
	switch {
	case errors.Is(err, bridge.ErrNoSuchCall):
		writeError(w, http.StatusNotFound, "no call in progress with id "+id)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("api: call hung up", "call_id", id)
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": "hanging up"})
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}
