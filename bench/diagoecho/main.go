// Command diagoecho is the peer issue 8 measures Switchboard against: an echo
// gateway on emiago/diago v0.31.0 that decodes each call's audio to PCM and
// encodes it again, with no jitter buffer. A module of its own, so that diago
// is not a dependency of Switchboard. From the repo root:
//
//	(cd bench/diagoecho && go build -o diagoecho .) && bench/diagoecho/diagoecho -port 5090 &
//	go run ./bench/load -attach 127.0.0.1:5090 -pid $! -calls 1000 -duration 30s -route echo
//
// 127.0.0.1 only; SIP on UDP, RTP on ports diago picks.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"

	"github.com/emiago/diago"
	"github.com/emiago/diago/audio"
	"github.com/emiago/sipgo"
)

func main() {
	port := flag.Int("port", 5090, "SIP UDP port on 127.0.0.1")
	flag.Parse()
	slog.SetLogLoggerLevel(slog.LevelWarn)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ua, err := sipgo.NewUA()
	if err != nil {
		slog.Error("user agent", "err", err)
		os.Exit(1)
	}
	dg := diago.NewDiago(ua, diago.WithTransport(diago.Transport{Transport: "udp", BindHost: "127.0.0.1", BindPort: *port}))
	err = dg.Serve(ctx, func(in *diago.DialogServerSession) {
		in.Trying()
		if err := in.Answer(); err != nil {
			return
		}
		props := diago.MediaProps{}
		r, err := in.AudioReader(diago.WithAudioReaderMediaProps(&props))
		if err != nil {
			return
		}
		w, err := in.AudioWriter()
		if err != nil {
			return
		}
		dec, err := audio.NewPCMDecoderReader(props.Codec.PayloadType, r)
		if err != nil {
			return
		}
		enc, err := audio.NewPCMEncoderWriter(props.Codec.PayloadType, w)
		if err != nil {
			return
		}
		buf := make([]byte, 320)
		for {
			n, err := dec.Read(buf)
			if err != nil {
				return
			}
			if _, err := enc.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	if err != nil {
		slog.Error("serve", "err", err)
	}
}
