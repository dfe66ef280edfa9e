package api

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// healthRoutes are open: load balancers and Prometheus carry no token.
func (s *Server) healthRoutes() {
	s.HandlePublic("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok") // the process serves HTTP; readiness is /readyz
	}))
	s.HandlePublic("GET /readyz", http.HandlerFunc(s.readyz))
	if s.cfg.Metrics != nil {
		s.HandlePublic("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}))
	}
}

// readyz says whether a new call would be taken: 503 while draining or at max_calls,
// so a SIP load balancer sends the next call elsewhere.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	active := s.cfg.Gateway.Active()
	switch {
	case s.cfg.Gateway.Draining():
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "draining", "calls": active})
	case s.cfg.MaxCalls > 0 && active >= s.cfg.MaxCalls:
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "at capacity",
			"calls": active, "max_calls": s.cfg.MaxCalls})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ready": true, "calls": active})
	}
}
