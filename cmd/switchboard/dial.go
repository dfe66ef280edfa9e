package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"github.com/switchboard-voip/switchboard/bridge"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

func runDial(args []string) error {
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	play := fs.String("play", "", "WAV file to send (16-bit PCM, any of 8/16/24/48 kHz)")
	record := fs.String("record", "", "WAV file to record what the far end sends")
	seconds := fs.Float64("seconds", 0, "hang up after this many seconds (0: one second after --play ends)")
	from := fs.String("from", "switchboard", "caller user")
	transport := fs.String("transport", "udp", "SIP transport: udp or tcp")
	codec := fs.String("codec", "PCMU", "codec to offer: PCMU, PCMA, G722 or opus")
	rtpIP := fs.String("rtp-ip", "127.0.0.1", "local IP for RTP")
	rtpPorts := fs.String("rtp-ports", "40000-49999", "local RTP port range")
	verbose := fs.Bool("v", false, "log SIP and media details")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitError(2)
	}
	if len(pos) != 1 {
		fmt.Fprintln(os.Stderr, "usage: switchboard dial SIP-URI [--play in.wav] [--record out.wav] [--seconds N]")
		return exitError(2)
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ip, err := netip.ParseAddr(*rtpIP)
	if err != nil {
		return fmt.Errorf("--rtp-ip: %w", err)
	}
	var lo, hi int
	if _, err := fmt.Sscanf(*rtpPorts, "%d-%d", &lo, &hi); err != nil {
		return fmt.Errorf("--rtp-ports %q: want MIN-MAX", *rtpPorts)
	}
	ports, err := media.NewPortPool(ip, lo, hi)
	if err != nil {
		return err
	}

	o := bridge.DialOptions{
		Target:    pos[0],
		From:      *from,
		Transport: *transport,
		Codec:     *codec,
		Ports:     ports,
		Duration:  time.Duration(*seconds * float64(time.Second)),
		Logger:    log,
	}
	if *play != "" {
		f, err := os.Open(*play)
		if err != nil {
			return err
		}
		o.Play, o.PlayRate, err = pcm.ReadWAV(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *play, err)
		}
	}
	var rec *pcm.WAVWriter
	if *record != "" {
		f, err := os.Create(*record)
		if err != nil {
			return err
		}
		defer f.Close()
		defer func() {
			if rec == nil { // nothing heard: still a valid, empty WAV
				rec, _ = pcm.NewWAVWriter(f, 8000, 1)
			}
			if rec != nil {
				rec.Close()
			}
		}()
		// The codec sets the rate (8 kHz G.711, 48 kHz Opus); a 20 ms frame tells which.
		o.Record = func(frame []int16) {
			if rec == nil {
				w, err := pcm.NewWAVWriter(f, len(frame)*50, 1)
				if err != nil {
					return
				}
				rec = w
			}
			rec.Write(frame)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := bridge.Dial(ctx, o)
	if err != nil {
		return fmt.Errorf("call failed: %w", err)
	}
	fmt.Printf("answered codec=%s after=%s; ended by=%s cause=%q rtp_in=%d rtp_out=%d lost=%d\n",
		res.Codec, res.Answer.Round(time.Millisecond), res.By, res.Cause, res.Stats.PacketsIn, res.Stats.PacketsOut, res.Stats.Lost)
	return nil
}
