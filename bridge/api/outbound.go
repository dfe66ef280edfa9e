package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/switchboard-voip/switchboard/bridge"
	"github.com/switchboard-voip/switchboard/sip"
)

// callRequest is POST /v1/calls's body.
type callRequest struct {
	To     string `json:"to"`
	From   string `json:"from"`
	Trunk  string `json:"trunk"`
	Target string `json:"target"`
}

// createCall places an outbound call: 201 {id} once it is reserved and dialling; 400 for
// a bad body, 404 for an unknown trunk or target, 403 for a destination the trunk may not
// dial, 503 when the trunk is at its caps or down, or the gateway drains.
func (s *Server) createCall(w http.ResponseWriter, r *http.Request) {
	var req callRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if req.To == "" || req.Trunk == "" || req.Target == "" {
		writeError(w, http.StatusBadRequest, "to, trunk and target are required")
		return
	}
	id, err := s.cfg.Originate(bridge.OutboundRequest{To: req.To, From: req.From, Trunk: req.Trunk, Target: req.Target})
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, sip.ErrUnknownTrunk), errors.Is(err, bridge.ErrUnknownTarget):
			status = http.StatusNotFound
		case errors.Is(err, sip.ErrDestinationNotAllowed):
			status = http.StatusForbidden
		case errors.Is(err, sip.ErrTrunkBusy), errors.Is(err, sip.ErrTrunkDown), errors.Is(err, bridge.ErrDraining):
			w.Header().Set("Retry-After", "5")
			status = http.StatusServiceUnavailable
		}
		s.log.Info("api: outbound call refused", "to", req.To, "trunk", req.Trunk, "target", req.Target, "status", status, "err", err)
		writeError(w, status, err.Error())
		return
	}
	s.log.Info("api: outbound call placed", "id", id, "to", req.To, "trunk", req.Trunk, "target", req.Target)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}
