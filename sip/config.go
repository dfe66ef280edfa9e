package sip

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Listen is one SIP listener.
type Listen struct {
	Transport string // "udp" | "tcp"
	Addr      string // "127.0.0.1:5060"; port 0 picks a free one
}

// Config is the SIP side of the gateway.
type Config struct {
	Listen      []Listen
	AdvertiseIP netip.Addr // in SDP c=/o= and Contact; the listen IP if unset
	Codecs      []string   // preference order, e.g. ["PCMU", "PCMA"]
	UserAgent   string
	Logger      *slog.Logger

	// T1 is the RFC 3261 round-trip estimate driving 2xx retransmission (default 500 ms);
	// T2 caps the retransmit interval (default 4 s).
	T1, T2 time.Duration

	// Abuse limits (guard.go): new INVITEs beyond MaxCalls get 503 (0: no limit); messages
	// from one source IP beyond RatePerSource a second (bursts of RateBurst) are dropped
	// (0: no limit); DropScanners drops known scanner user agents without a reply.
	MaxCalls      int
	RatePerSource float64
	RateBurst     int
	DropScanners  bool
}

func (cfg *Config) setDefaults() error {
	if len(cfg.Listen) == 0 {
		return fmt.Errorf("sip: no listeners configured")
	}
	for i, l := range cfg.Listen {
		t := strings.ToLower(l.Transport)
		if t != "udp" && t != "tcp" {
			return fmt.Errorf("sip: listen[%d]: transport %q not supported (udp, tcp)", i, l.Transport)
		}
		cfg.Listen[i].Transport = t
	}
	if len(cfg.Codecs) == 0 {
		cfg.Codecs = []string{"PCMU", "PCMA"}
	}
	for i, c := range cfg.Codecs {
		u := strings.ToUpper(c)
		if _, ok := supportedCodecs[u]; !ok {
			return fmt.Errorf("sip: codec %q not supported (PCMU, PCMA)", c)
		}
		cfg.Codecs[i] = u
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "switchboard"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.T1 <= 0 {
		cfg.T1 = 500 * time.Millisecond
	}
	if cfg.T2 <= 0 {
		cfg.T2 = 4 * time.Second
	}
	return nil
}
