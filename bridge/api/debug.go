package api

import (
	"net/http"
	"net/http/pprof"
)

// debugRoutes serve Go's profiler behind the token: profiles reveal internals
// and cost CPU, so strangers get 401.
func (s *Server) debugRoutes() {
	s.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	s.Handle("GET /debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
	s.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	s.Handle("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	s.Handle("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
}
