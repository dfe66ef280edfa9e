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
// ends; when it fails the call goes on, logged.
func blindTransfer(ctx context.Context, c *sip.InboundCall, s *session, log *slog.Logger) func(string) error {
	var busy atomic.Bool
	return func(target string) error {
		if !busy.CompareAndSwap(false, true) {
			return errTransferBusy
		}
		go func() {
			defer busy.Store(false)
			tctx, cancel := context.WithTimeout(ctx, transferTimeout)
			defer cancel()
			switch err := c.Refer(tctx, target); {
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
