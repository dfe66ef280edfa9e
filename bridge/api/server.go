// Package api is the gateway's HTTP surface: the admin API under /v1 and
// /debug/pprof behind a bearer token, and /healthz, /readyz and /metrics open
// for probes and Prometheus. cmd/switchboard serves it on http.listen.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voip/switchboard/bridge"
)

// Gateway is what the API reads and acts on; *bridge.Gateway satisfies it.
type Gateway interface {
	Calls() []bridge.CallInfo
	Hangup(id, reason string) error
	Active() int
	Draining() bool
}

// Config is what the API serves.
type Config struct {
	// Token is the bearer token of /v1 and /debug; "" refuses them all (401).
	Token   string
	Gateway Gateway
	// Metrics is served at /metrics; nil leaves it out.
	Metrics prometheus.Gatherer
	// Reload re-reads the dialplan (POST /v1/dialplan/reload); an error keeps the running one.
	Reload func() error
	// MaxCalls makes /readyz fail at this many calls in progress; 0: no limit.
	MaxCalls int
	// Originate places an outbound call (POST /v1/calls); nil leaves the route out.
	Originate func(bridge.OutboundRequest) (string, error)
	Logger    *slog.Logger
}

// Server is the API's handler. Each file registers its own routes from New.
type Server struct {
	cfg   Config
	mux   *http.ServeMux
	log   *slog.Logger
	token [sha256.Size]byte // hashed, so the comparison takes the same time whatever the length
}

// New builds the API and registers its routes.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, token: sha256.Sum256([]byte(cfg.Token))}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.healthRoutes()   // health.go
	s.callRoutes()     // calls.go
	s.dialplanRoutes() // dialplan.go
	s.debugRoutes()    // debug.go
	if cfg.Originate != nil {
		s.Handle("POST /v1/calls", http.HandlerFunc(s.createCall)) // outbound.go
	}
	// Anything else under /v1 is 401 before 404: a stranger learns nothing of the routes.
	s.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route")
	}))
	return s
}

// Handle adds a route behind the token.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, s.authorize(h)) }

// HandlePublic adds a route anyone may call.
func (s *Server) HandlePublic(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// authorize lets through requests carrying the bearer token.
func (s *Server) authorize(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || s.cfg.Token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
