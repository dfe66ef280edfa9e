package webroom

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

//go:embed page.html
var page []byte

const (
	maxOffer      = 64 << 10 // an SDP offer is a few KB
	gatherTimeout = 5 * time.Second
	maxNameLength = 64
)

// Handler serves the rooms under /rooms/ (mount it at that prefix):
//
//	GET    /rooms/{room}               the page a browser joins from
//	POST   /rooms/{room}/offer         {"sdp": offer, "name": shown name} → {"id", "sdp": answer}
//	GET    /rooms/{room}/participants  {"room", "participants": [...]}; 404 if no such room
//	DELETE /rooms/{room}               close the room: callers get BYE, browsers are disconnected
//	GET    /rooms/                     {"rooms": {name: participants}}
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rooms/{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"rooms": h.Rooms()})
	})
	mux.HandleFunc("GET /rooms/{room}", h.servePage)
	mux.HandleFunc("POST /rooms/{room}/offer", h.serveOffer)
	mux.HandleFunc("GET /rooms/{room}/participants", h.serveParticipants)
	mux.HandleFunc("DELETE /rooms/{room}", h.serveDelete)
	return mux
}

func (h *Hub) servePage(w http.ResponseWriter, r *http.Request) {
	if !ValidName(r.PathValue("room")) {
		http.Error(w, ErrBadName.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(page)
}

type offerRequest struct {
	SDP  string `json:"sdp"`
	Name string `json:"name"`
}

type offerResponse struct {
	ID  string `json:"id"`
	SDP string `json:"sdp"`
}

func (h *Hub) serveOffer(w http.ResponseWriter, r *http.Request) {
	var req offerRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxOffer)).Decode(&req); err != nil || req.SDP == "" {
		writeError(w, http.StatusBadRequest, `want JSON {"sdp": "<offer>", "name": "..."}`)
		return
	}
	if len(req.Name) > maxNameLength {
		req.Name = req.Name[:maxNameLength]
	}
	ctx, cancel := context.WithTimeout(r.Context(), gatherTimeout)
	defer cancel()
	id, answer, err := h.JoinBrowser(ctx, r.PathValue("room"), req.Name, req.SDP)
	switch {
	case errors.Is(err, ErrBadName):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		h.log.Warn("browser join failed", "room", r.PathValue("room"), "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, offerResponse{ID: id, SDP: answer})
	}
}

func (h *Hub) serveParticipants(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	ps, err := h.Participants(room)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "participants": ps})
}

func (h *Hub) serveDelete(w http.ResponseWriter, r *http.Request) {
	if err := h.Delete(r.PathValue("room")); err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
