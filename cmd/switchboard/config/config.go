// Package config is the gateway's YAML configuration: typed settings with
// defaults, validated once at load so nothing downstream re-checks them.
package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// Config is a validated gateway configuration.
type Config struct {
	File         string // where it was loaded from; "" for Default
	SIP          SIP
	RTP          RTP
	HTTP         HTTP
	Dialplan     string        // dialplan path, resolved against the config file's directory
	DrainTimeout time.Duration // on SIGTERM, how long calls may run on before BYE
	Log          Log
	Recordings   Recordings
	CDR          CDR
	API          API
	Rooms        Rooms
	Trunks       []Trunk // carriers in and out (trunks.go)
}

// SIP is the signalling side.
type SIP struct {
	Listen      []Listen
	AdvertiseIP netip.Addr // in SDP c=/o= and Contact; always set: the listen IP when not configured
	Codecs      []string   // preference order, from "PCMU", "PCMA", "G722", "opus"
	UserAgent   string     // "" sends no User-Agent header
	SRTP        string     // SDES-SRTP where a listener does not say: "off", "optional" (default), "required"

	MaxCalls     int  // new INVITEs beyond this many calls get 503; 0 = no limit
	RateLimit    int  // SIP messages a second from one source IP before the rest are dropped; 0 = no limit
	RateBurst    int  // messages a source may send at once within RateLimit; 0 = RateLimit
	DropScanners bool // drop friendly-scanner, sipvicious and similar user agents without a reply
}

// Listen is one SIP socket.
type Listen struct {
	Transport string // "udp", "tcp" or "tls"
	Addr      netip.AddrPort
	Cert, Key string // tls: PEM files, resolved against the config file's directory, loaded once at parse
	SRTP      string // "off", "optional", "required"; "" takes SIP.SRTP
}

// RTP is the media side.
type RTP struct {
	IP               netip.Addr // bind address of RTP sockets
	PortMin, PortMax int        // PortMin even, PortMin < PortMax, both in 1024..65535
	Timeout          time.Duration
}

// HTTP serves /metrics and /healthz.
type HTTP struct {
	Listen string // host:port; "" disables the server
}

// Recordings is where calls whose route says record: true are written.
type Recordings struct {
	Dir string // resolved against the config file's directory
}

// CDR is where call detail records are kept.
type CDR struct {
	Driver string // "sqlite" or "postgres"
	DSN    string // sqlite: file path, resolved against the config file's directory; postgres: URL or key=value
	Node   string // this gateway's name in the records; "" means the host name
}

// Rooms are the WebRTC rooms Switchboard hosts (room targets with builtin:),
// served at /rooms/<name> on the HTTP listener.
type Rooms struct {
	ICEIP      netip.Addr // the address browsers send media to; 0.0.0.0: every non-loopback interface
	UDPPortMin int        // ICE UDP ports; both 0: any
	UDPPortMax int
}

// Log configures the process logger.
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
}

// Allowed values, in the order error messages list them.
var (
	transports = []string{"udp", "tcp", "tls"}
	codecs     = []string{"PCMU", "PCMA", "G722", "opus"}
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	cdrDrivers = []string{"sqlite", "postgres"}
)

const (
	rtpPortLow  = 1024
	rtpPortHigh = 65535
)

// Default returns the configuration used for every key a file leaves out.
func Default() *Config {
	lo := netip.MustParseAddr("127.0.0.1")
	return &Config{
		SIP: SIP{
			Listen: []Listen{
				{Transport: "udp", Addr: netip.AddrPortFrom(lo, 5060)},
				{Transport: "tcp", Addr: netip.AddrPortFrom(lo, 5060)},
			},
			AdvertiseIP: lo,
			Codecs:      []string{"opus", "PCMU", "PCMA"},
			UserAgent:   "switchboard",
			SRTP:        "optional",

			DropScanners: true,
		},
		RTP:          RTP{IP: lo, PortMin: 10000, PortMax: 10999, Timeout: 30 * time.Second},
		HTTP:         HTTP{Listen: "127.0.0.1:8080"},
		Dialplan:     "dialplan.yaml",
		DrainTimeout: 30 * time.Second,
		Log:          Log{Level: slog.LevelInfo, Format: "text"},
		Recordings:   Recordings{Dir: "recordings"},
		CDR:          CDR{Driver: "sqlite", DSN: "switchboard-cdr.db"},
		Rooms:        Rooms{ICEIP: lo},
	}
}

// Load reads and validates the config at path; a relative dialplan path is
// resolved against path's directory. A validation failure is an Errors, one
// "file:line:col: message" per problem.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, filepath.Dir(path))
}

// Parse validates a config; name is used in errors and dir resolves a relative
// dialplan path. An empty document is all defaults.
func Parse(name string, data []byte, dir string) (*Config, error) {
	d := &decoder{Decoder: yamlfile.Decoder{File: name}, dir: dir}
	root, ok := d.Document(data)
	if !ok {
		return nil, d.Err()
	}
	c := Default()
	c.File = name
	d.config(c, root)
	if err := d.Err(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(c.Dialplan) {
		c.Dialplan = filepath.Join(dir, c.Dialplan)
	}
	if c.CDR.Driver == "sqlite" && !filepath.IsAbs(c.CDR.DSN) {
		c.CDR.DSN = filepath.Join(dir, c.CDR.DSN)
	}
	if !filepath.IsAbs(c.Recordings.Dir) {
		c.Recordings.Dir = filepath.Join(dir, c.Recordings.Dir)
	}
	return c, nil
}
