package sip

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// Trunk states from OPTIONS pings.
const (
	trunkUnknown int32 = iota
	trunkUp
	trunkDown
)

// pingLoop sends OPTIONS to the trunk every OptionsPing and marks it up on any answer but
// 503, down when it stays silent or answers 503. Each change is logged and reported.
func (s *Server) pingLoop(ctx context.Context, t *outTrunk) {
	tick := time.NewTicker(t.OptionsPing)
	defer tick.Stop()
	for {
		up, why := s.ping(ctx, t)
		if ctx.Err() != nil {
			return
		}
		st := trunkDown
		if up {
			st = trunkUp
		}
		if old := t.state.Swap(st); old != st {
			if up {
				s.log.Info("trunk up", "trunk", t.Name, "why", why)
			} else {
				s.log.Warn("trunk down", "trunk", t.Name, "why", why)
			}
			if s.cfg.OnTrunkState != nil {
				s.cfg.OnTrunkState(t.Name, up)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ping sends one OPTIONS to the trunk's first target and says whether it answered usefully.
func (s *Server) ping(ctx context.Context, t *outTrunk) (bool, string) {
	targets, err := resolveTargets(ctx, s.cfg.Resolver, t.Host, t.Port, t.Transport)
	if err != nil {
		return false, err.Error()
	}
	req := s.trunkRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: t.Host, Port: t.Port}, targets[0],
		uuid.NewString(), sip.GenerateTagN(16), 1)
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	res, err := s.roundTrip(ctx, req, min(t.OptionsPing, 5*time.Second))
	if err != nil {
		return false, err.Error()
	}
	if res.StatusCode == 503 {
		return false, "503 " + res.Reason
	}
	return true, res.StartLine()
}
