package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/switchboard-voip/switchboard/dialplan"
)

const dialplanRouteUsage = "usage: switchboard dialplan route FILE --to N [--from N] [--trunk T] [--header K=V]... [--source IP] [--at TIME]"

func runDialplan(args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: switchboard dialplan check FILE | route FILE --to N [--from N] ...")
		return exitError(2)
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: switchboard dialplan check FILE")
			return exitError(2)
		}
		p, err := dialplan.Load(args[1])
		if err != nil {
			printDialplanErrors(err)
			return exitError(1)
		}
		fmt.Printf("%s: ok, %d routes\n", args[1], len(p.Routes()))
		return nil
	case "route":
		return runDialplanRoute(args[1:])
	}
	fmt.Fprintf(os.Stderr, "unknown dialplan command %q\n", args[0])
	return exitError(2)
}

// headerFlags collects repeated --header K=V (or "K: V").
type headerFlags [][2]string

func (h *headerFlags) String() string { return fmt.Sprint(*h) }
func (h *headerFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if ck, cv, cok := strings.Cut(s, ":"); cok && (!ok || len(ck) < len(k)) {
		k, v, ok = ck, cv, true
	}
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	*h = append(*h, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	return nil
}

func runDialplanRoute(args []string) error {
	fs := flag.NewFlagSet("dialplan route", flag.ContinueOnError)
	to := fs.String("to", "", "called number (request-URI user)")
	from := fs.String("from", "", "caller number")
	trunk := fs.String("trunk", "", "inbound trunk name")
	source := fs.String("source", "", "signalling source address")
	at := fs.String("at", "", `arrival time, RFC 3339 ("2025-03-05T09:30:00+01:00"); default now`)
	var headers headerFlags
	fs.Var(&headers, "header", "SIP header NAME=VALUE (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(os.Stderr, dialplanRouteUsage)
		return exitError(2)
	}
	c := dialplan.CallInfo{To: *to, From: *from, Trunk: *trunk, At: time.Now()}
	if *source != "" {
		if c.Source, err = netip.ParseAddr(*source); err != nil {
			fmt.Fprintf(os.Stderr, "--source: %q is not an IP address\n", *source)
			return exitError(2)
		}
	}
	if *at != "" {
		if c.At, err = time.Parse(time.RFC3339, *at); err != nil {
			fmt.Fprintf(os.Stderr, "--at: %q is not an RFC 3339 time such as 2025-03-05T09:30:00+01:00\n", *at)
			return exitError(2)
		}
	}
	c.Header = func(name string) string {
		for _, h := range headers {
			if strings.EqualFold(h[0], name) {
				return h[1]
			}
		}
		return ""
	}
	p, err := dialplan.Load(pos[0])
	if err != nil {
		printDialplanErrors(err)
		return exitError(1)
	}
	r, ok := p.Route(c)
	if !ok {
		fmt.Println("no route: the call would get 404 Not Found")
		return nil
	}
	fmt.Printf("route %q (line %d) → %s\n", r.Name, r.Line, describeTarget(r.Target))
	if m := r.Match.String(); m != "" {
		fmt.Printf("  match: %s\n", m)
	}
	for i, t := range r.Fallback {
		fmt.Printf("  fallback %d: %s\n", i+1, describeTarget(t))
	}
	if r.Ring > 0 {
		fmt.Printf("  ring: %s\n", r.Ring)
	}
	if r.MaxDuration > 0 {
		fmt.Printf("  max_duration: %s\n", r.MaxDuration)
	}
	if r.Record {
		fmt.Println("  record: true")
	}
	return nil
}

func printDialplanErrors(err error) {
	var list dialplan.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(os.Stderr, e)
		}
		return
	}
	fmt.Fprintln(os.Stderr, err)
}

func describeTarget(t dialplan.Target) string {
	switch t.Type {
	case dialplan.TypePlay:
		return "play " + t.File
	case dialplan.TypeReject:
		return fmt.Sprintf("reject %d %s", t.Status, t.Reason)
	case dialplan.TypeAgent:
		if t.Protocol != "" {
			return fmt.Sprintf("agent %s %s", t.Protocol, t.URL)
		}
		return "agent " + t.Agent
	case dialplan.TypeTransfer:
		if t.Trunk != "" {
			return fmt.Sprintf("transfer %s via trunk %s", t.To, t.Trunk)
		}
		return "transfer " + t.To
	}
	return t.Type
}
