package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-voip/switchboard/bridge"
	"github.com/switchboard-voip/switchboard/bridge/api"
	"github.com/switchboard-voip/switchboard/bridge/webroom"
	"github.com/switchboard-voip/switchboard/cmd/switchboard/config"
	"github.com/switchboard-voip/switchboard/dialplan"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/sip"
)

func runGateway(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("c", "configs/switchboard.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	gcDefaults(log)
	dp, err := dialplan.Load(cfg.Dialplan)
	if err != nil {
		return err
	}
	ports, err := media.NewPortPool(cfg.RTP.IP, cfg.RTP.PortMin, cfg.RTP.PortMax)
	if err != nil {
		return err
	}

	// Call records open first: the sweep closes what a crashed run left open (cdr.go).
	records, closeRecords, err := openRecords(cfg.CDR, log)
	if err != nil {
		return err
	}
	defer closeRecords()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Built-in WebRTC rooms: pages and signalling on the HTTP listener, media on rooms.ice_ip.
	rooms, err := webroom.NewHub(webroom.Config{ICEIP: cfg.Rooms.ICEIP, UDPPortMin: cfg.Rooms.UDPPortMin,
		UDPPortMax: cfg.Rooms.UDPPortMax, Logger: log})
	if err != nil {
		return err
	}
	defer rooms.Close()
	metrics := bridge.NewMetrics(reg)
	gw := bridge.New(bridge.Config{
		Ports:        ports,
		MediaTimeout: cfg.RTP.Timeout,
		Logger:       log,
		Metrics:      metrics,
		// Recordings go where the config says; the directory is made at the first one.
		RecordingsDir: cfg.Recordings.Dir,
		Records:       records,
		Rooms:         rooms,
	})
	if err := gw.SetPlan(dp); err != nil {
		return fmt.Errorf("%s: %w", cfg.Dialplan, err)
	}

	listen := make([]sip.Listen, len(cfg.SIP.Listen))
	for i, l := range cfg.SIP.Listen {
		listen[i] = sip.Listen{Transport: l.Transport, Addr: l.Addr.String(), Cert: l.Cert, Key: l.Key, SRTP: l.SRTP}
	}
	inbound, outbound := config.SIPTrunks(cfg.Trunks)
	srv, err := sip.NewServer(sip.Config{
		Listen:      listen,
		AdvertiseIP: cfg.SIP.AdvertiseIP,
		Codecs:      cfg.SIP.Codecs,
		UserAgent:   cfg.SIP.UserAgent,
		SRTP:        cfg.SIP.SRTP,
		Logger:      log,

		MaxCalls:      cfg.SIP.MaxCalls,
		RatePerSource: float64(cfg.SIP.RateLimit),
		RateBurst:     cfg.SIP.RateBurst,
		DropScanners:  cfg.SIP.DropScanners,

		OnMessage: metrics.SIPMessage, // SIP counters without sip importing prometheus
		OnRefused: metrics.SIPRefused,

		Inbound:      inbound, // carriers (config/trunks.go)
		Outbound:     outbound,
		OnTrunkState: metrics.TrunkState,
	}, gw.HandleCall)
	if err != nil {
		return err
	}
	gw.SetTrunks(srv) // transfer targets to a number dial out through these

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sipDone := make(chan error, 1)
	go func() { sipDone <- srv.Serve(ctx) }()

	apiReloads := make(chan chan error)
	var httpSrv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/rooms/", rooms.Handler())
		// Admin API, health, readiness, metrics and pprof (bridge/api).
		mux.Handle("/", api.New(api.Config{
			Token:    cfg.API.Token,
			Gateway:  gw,
			Metrics:  reg,
			MaxCalls: cfg.SIP.MaxCalls,
			Logger:   log,
			Originate: func(r bridge.OutboundRequest) (string, error) { // POST /v1/calls
				return gw.Originate(srv, r)
			},
			Reload: func() error { // on the main loop, like SIGHUP
				done := make(chan error, 1)
				apiReloads <- done
				return <-done
			},
		}))
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go httpSrv.Serve(ln)
	}
	log.Info("switchboard running", "version", version, "config", cfg.File, "dialplan", cfg.Dialplan,
		"sip", cfg.SIP.Listen, "rtp", fmt.Sprintf("%s:%d-%d", cfg.RTP.IP, cfg.RTP.PortMin, cfg.RTP.PortMax), "http", cfg.HTTP.Listen)

	watch := newDialplanWatch(cfg.Dialplan)
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case <-poll.C:
			if data, changed := watch.changed(); changed {
				reloadDialplan(log, gw, cfg.Dialplan, data, "file changed")
			}
		case done := <-apiReloads:
			data, err := watch.read()
			if err == nil {
				err = reloadDialplan(log, gw, cfg.Dialplan, data, "admin API")
			}
			done <- err
		case err := <-sipDone:
			return fmt.Errorf("sip: %w", err)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if data, err := watch.read(); err != nil {
					log.Error("dialplan reload refused; keeping the running one", "file", cfg.Dialplan, "err", err)
				} else {
					reloadDialplan(log, gw, cfg.Dialplan, data, "SIGHUP")
				}
				continue
			}
			log.Info("draining", "signal", sig.String(), "active_calls", gw.Active(), "drain_timeout", cfg.DrainTimeout)
			srv.SetDraining(true)
			dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
			gw.Drain(dctx)
			cancel()
			stop()
			if err := <-sipDone; err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("sip stopped", "err", err)
			}
			if httpSrv != nil {
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				httpSrv.Shutdown(sctx)
				cancel()
			}
			log.Info("stopped")
			return nil
		}
	}
}

// reloadDialplan switches new calls to the dialplan in data, or keeps the
// running one when it is invalid; calls in progress keep the route they got.
func reloadDialplan(log *slog.Logger, gw *bridge.Gateway, path string, data []byte, why string) error {
	dp, err := dialplan.Parse(path, data)
	if err == nil {
		err = gw.SetPlan(dp)
	}
	if err != nil {
		log.Error("dialplan reload refused; keeping the running one", "file", path, "trigger", why, "err", err)
		return err
	}
	log.Info("dialplan reloaded", "file", path, "trigger", why, "routes", len(dp.Routes()))
	return nil
}

// dialplanWatch notices edits of the dialplan by polling its content: it
// works on any filesystem and with editors that replace the file.
type dialplanWatch struct {
	path string
	sum  [sha256.Size]byte // of the content last loaded or refused
}

func newDialplanWatch(path string) *dialplanWatch {
	w := &dialplanWatch{path: path}
	w.read()
	return w
}

// read returns the file's content and makes it the one last seen.
func (w *dialplanWatch) read() ([]byte, error) {
	data, err := os.ReadFile(w.path)
	if err == nil {
		w.sum = sha256.Sum256(data)
	}
	return data, err
}

// changed returns new content once it is whole: two reads 100 ms apart
// agree, so a file caught mid-write is taken at the next poll instead.
func (w *dialplanWatch) changed() ([]byte, bool) {
	data, err := os.ReadFile(w.path)
	if err != nil || sha256.Sum256(data) == w.sum {
		return nil, false // gone for a moment (an editor's rename) or unchanged
	}
	time.Sleep(100 * time.Millisecond)
	again, err := os.ReadFile(w.path)
	if err != nil || !bytes.Equal(data, again) {
		return nil, false
	}
	w.sum = sha256.Sum256(data)
	return data, true
}

func newLogger(c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
