package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/switchboard-voip/switchboard/sip"
)

// transferTimeout bounds a blind transfer from REFER to the final NOTIFY.
const transferTimeout = time.Minute

var errTransferBusy = errors.New("a transfer is already in progress")

// blindTransfer is a session's transfer action: REFER the caller to target in
// the background; when the new call is up (NOTIFY 200) our part of the call
// ends; when it fails the call goes on, logged. When the caller's side does
// not take REFER (405, 501, 420) and bridge is set, or when bridgeOnly, the
// target is dialled as a second leg and bridged instead (b2bua.go).
func blindTransfer(ctx context.Context, c *sip.InboundCall, s *session, log *slog.Logger,
	bridge func(ctx context.Context, target string) error, bridgeOnly bool) func(string) error {
	var busy atomic.Bool
	return func(target string) error {
		if !busy.CompareAndSwap(false, true) {
			return errTransferBusy
		}
		go func() {
			defer busy.Store(false)
			tctx, cancel := context.WithTimeout(ctx, transferTimeout)
			defer cancel()
			var err error = errReferSkipped
			if !bridgeOnly {
				err = c.Refer(tctx, target)
			}
			if bridge != nil && referUnsupported(err) {
				log.Info("REFER not taken; bridging the transfer", "target", target, "refer", err)
				switch err := bridge(tctx, target); {
				case err == nil:
					log.Info("transferred by bridging", "target", target)
				case errors.Is(err, sip.ErrCallEnded) || ctx.Err() != nil:
					log.Info("call ended during transfer", "target", target)
				default:
					log.Warn("transfer failed; the call goes on", "target", target, "err", err)
				}
				return
			}
			switch {
			case err == nil:
				log.Info("transferred", "target", target)
				s.Hangup("transferred to " + target)
			case errors.Is(err, sip.ErrCallEnded):
				log.Info("call ended during transfer", "target", target)
			default:
				log.Warn("transfer failed; the call goes on", "target", target, "err", err)
			}
		}()
		return nil
	}
}

// errReferSkipped stands for a REFER the route said not to try.
var errReferSkipped = &sip.StatusError{Code: 501, Reason: "REFER not tried: the route bridges transfers"}

// referUnsupported: the caller's side does not do REFER at all (RFC 3515 §2.4.2,
// RFC 3261 §8.2.1-2), as opposed to refusing this one transfer.
func referUnsupported(err error) bool {
	var se *sip.StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Code == 405 || se.Code == 501 || se.Code == 420
}
