// Command load holds N concurrent G.711 calls against a switchboard gateway for
// D seconds and measures what a caller would: loss, the interval jitter and the
// round-trip delay of the audio that comes back, and what the calls cost the
// gateway in CPU, memory and goroutines.
//
//	go run ./bench/load -calls 500 -duration 60s -route echo -json out.json
//
// It builds and starts the gateway itself (a config of its own with an echo
// route and a route to a Twilio-protocol echo bot served by this process), or
// attaches to a running one with -attach and -pid. Only 127.0.0.1 is used.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	calls    int
	duration time.Duration
	route    string
	rate     float64
	attach   string // SIP address of a running gateway
	pid      int
	metrics  string // its HTTP address (metrics, pprof)
	token    string
	bin      string
	jsonOut  string
	profile  string
	selfProf string
	logLevel string
	keep     bool
	chunkMs  int    // the twilio route's chunk_ms (0: the gateway's default, 20)
	bot      string // the twilio route's bot: polled or netpoll
	warmup   int    // calls placed and ended before the idle sample
}

func main() {
	var o options
	flag.IntVar(&o.calls, "calls", 100, "concurrent calls")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long all calls are held together")
	flag.StringVar(&o.route, "route", "echo", "echo or twilio (a Twilio-protocol echo bot served by this tool)")
	flag.Float64Var(&o.rate, "rate", 100, "calls started (and ended) per second")
	flag.StringVar(&o.attach, "attach", "", "SIP address of a running gateway (udp); empty builds and starts one")
	flag.IntVar(&o.pid, "pid", 0, "with -attach: the gateway's process id (CPU, RSS)")
	flag.StringVar(&o.metrics, "http", "", "with -attach: the gateway's HTTP address (metrics, pprof)")
	flag.StringVar(&o.token, "token", "", "with -attach: the admin API token (pprof)")
	flag.StringVar(&o.bin, "bin", "", "gateway binary to start; empty builds ./cmd/switchboard")
	flag.StringVar(&o.jsonOut, "json", "", "write the full result as JSON here")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the gateway over the hold here (needs pprof behind the token)")
	flag.StringVar(&o.selfProf, "toolprofile", "", "write a CPU profile of this tool over the hold here")
	flag.StringVar(&o.logLevel, "loglevel", "info", "log level of the started gateway")
	flag.IntVar(&o.chunkMs, "chunk-ms", 0, "the twilio route's chunk_ms: audio per media message to the bot (0: the default, 20)")
	flag.StringVar(&o.bot, "bot", "polled", "the twilio route's bot: polled (its sockets out of the poller, looked at every 2 ms, as a bot on another machine costs the gateway) or netpoll (coder/websocket, a goroutine per connection)")
	flag.IntVar(&o.warmup, "warmup", 2, "calls placed, held 1 s and ended before the idle sample, so that what a first call loads (code pages, runtime structures) is not counted as memory per call")
	flag.BoolVar(&o.keep, "keep", false, "keep the started gateway's directory (config, log)")
	flag.Parse()
	if o.calls < 1 || o.calls > 5000 || o.duration <= 0 || o.duration > 30*time.Minute || o.rate <= 0 || o.warmup < 0 || o.warmup > 50 {
		log.Fatal("want 1 <= -calls <= 5000, 0 < -duration <= 30m, -rate > 0, 0 <= -warmup <= 50")
	}
	if o.route != "echo" && o.route != "twilio" {
		log.Fatalf("-route %q: want echo or twilio", o.route)
	}
	raiseFDLimit()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.summary())
	if o.jsonOut != "" {
		data, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.jsonOut, data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// raiseFDLimit lifts the soft open-file limit to the hard one: each call on
// the bot route holds the bot's end of a WebSocket here.
func raiseFDLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
