package main

import (
	"context"
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
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-voip/switchboard/bridge"
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
	gw := bridge.New(bridge.Config{
		Ports:        ports,
		MediaTimeout: cfg.RTP.Timeout,
		Logger:       log,
		Metrics:      bridge.NewMetrics(reg),
		// Recordings go where the config says; the directory is made at the first one.
		RecordingsDir: cfg.Recordings.Dir,
		Records:       records,
	})
	if err := gw.SetPlan(dp); err != nil {
		return fmt.Errorf("%s: %w", cfg.Dialplan, err)
	}

	listen := make([]sip.Listen, len(cfg.SIP.Listen))
	for i, l := range cfg.SIP.Listen {
		listen[i] = sip.Listen{Transport: l.Transport, Addr: l.Addr.String()}
	}
	srv, err := sip.NewServer(sip.Config{
		Listen:      listen,
		AdvertiseIP: cfg.SIP.AdvertiseIP,
		Codecs:      cfg.SIP.Codecs,
		UserAgent:   cfg.SIP.UserAgent,
		Logger:      log,

		MaxCalls:      cfg.SIP.MaxCalls,
		RatePerSource: float64(cfg.SIP.RateLimit),
		RateBurst:     cfg.SIP.RateBurst,
		DropScanners:  cfg.SIP.DropScanners,
	}, gw.HandleCall)
	if err != nil {
		return err
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sipDone := make(chan error, 1)
	go func() { sipDone <- srv.Serve(ctx) }()

	var httpSrv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go httpSrv.Serve(ln)
	}
	log.Info("switchboard running", "version", version, "config", cfg.File, "dialplan", cfg.Dialplan,
		"sip", cfg.SIP.Listen, "rtp", fmt.Sprintf("%s:%d-%d", cfg.RTP.IP, cfg.RTP.PortMin, cfg.RTP.PortMax), "http", cfg.HTTP.Listen)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-sipDone:
			return fmt.Errorf("sip: %w", err)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reloadDialplan(log, gw, cfg.Dialplan)
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

// reloadDialplan switches new calls to the dialplan on disk, or keeps the
// running one when the file is invalid.
func reloadDialplan(log *slog.Logger, gw *bridge.Gateway, path string) {
	dp, err := dialplan.Load(path)
	if err == nil {
		err = gw.SetPlan(dp)
	}
	if err != nil {
		log.Error("dialplan reload refused; keeping the running one", "file", path, "err", err)
		return
	}
	log.Info("dialplan reloaded", "file", path)
}

func newLogger(c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
