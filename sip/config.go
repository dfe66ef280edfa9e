package sip

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Listen is one SIP listener.
type Listen struct {
	Transport string // "udp" | "tcp" | "tls"
	Addr      string // "127.0.0.1:5060"; port 0 picks a free one
	Cert, Key string // tls: PEM certificate chain and private key files (tls.go)
	SRTP      string // "off" | "optional" | "required"; "" takes Config.SRTP (sdes.go)
}

// Config is the SIP side of the gateway.
type Config struct {
	Listen      []Listen
	AdvertiseIP netip.Addr // in SDP c=/o= and Contact; the listen IP if unset
	Codecs      []string   // preference order, e.g. ["PCMU", "PCMA"]
	UserAgent   string
	SRTP        string // SDES-SRTP for listeners that do not say: "off", "optional" (default), "required"
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

	// Observers for metrics, so sip stays free of a metrics library; both run on the
	// read path and must not block. OnMessage sees each request received (dir "in",
	// code 0) and each response received ("in") or sent ("out") with the method it
	// answers. OnRefused sees requests refused before any handler: answered with code
	// (reason invalid, malformed, max_calls, draining) or dropped (code 0: rate,
	// scanner, malformed).
	OnMessage func(dir, method string, code int)
	OnRefused func(reason string, code int)

	// Session timers (RFC 4028, session_timer.go): MinSE is the smallest
	// Session-Expires we accept (422 below it; default 90 s, the RFC's floor;
	// lower only in tests); SessionExpires is the interval we ask of a caller
	// that supports timers but named none (default 1800 s; negative: none).
	MinSE          time.Duration
	SessionExpires time.Duration

	// Trunks (trunk.go): carriers that may call in, and the ones calls go out through.
	Inbound      []InboundTrunk
	Outbound     []OutboundTrunk
	Realm        string                      // digest realm of inbound challenges; default "switchboard"
	NonceTTL     time.Duration               // an older nonce gets a stale=true challenge; default 5m
	Resolver     *net.Resolver               // for outbound trunk hosts (SRV, A); nil: the system's
	OnTrunkState func(trunk string, up bool) // OPTIONS ping verdict changes (options_ping.go)
}

func (cfg *Config) setDefaults() error {
	if len(cfg.Listen) == 0 {
		return fmt.Errorf("sip: no listeners configured")
	}
	for i, l := range cfg.Listen {
		t := strings.ToLower(l.Transport)
		if t != "udp" && t != "tcp" && t != "tls" {
			return fmt.Errorf("sip: listen[%d]: transport %q not supported (udp, tcp, tls)", i, l.Transport)
		}
		cfg.Listen[i].Transport = t
		if err := checkListenSecurity(&cfg.Listen[i], cfg.SRTP); err != nil {
			return fmt.Errorf("sip: listen[%d]: %w", i, err)
		}
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
	if cfg.MinSE <= 0 {
		cfg.MinSE = minSEFloor
	}
	if cfg.SessionExpires == 0 {
		cfg.SessionExpires = 1800 * time.Second
	}
	return nil
}
