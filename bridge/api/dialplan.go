package api

import "net/http"

func (s *Server) dialplanRoutes() {
	s.Handle("POST /v1/dialplan/reload", http.HandlerFunc(s.reloadDialplan))
}

// reloadDialplan re-reads the dialplan file: 200 when new calls use it, 422 with
// the file's errors when it is refused (the running one stays).
func (s *Server) reloadDialplan(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Reload == nil {
		writeError(w, http.StatusNotImplemented, "dialplan reload not available")
		return
	}
	if err := s.cfg.Reload(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}
