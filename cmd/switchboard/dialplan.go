package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/switchboard-voip/switchboard/dialplan"
)

func runDialplan(args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: switchboard dialplan check FILE | route FILE --to N [--from N]")
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
		fs := flag.NewFlagSet("dialplan route", flag.ContinueOnError)
		to := fs.String("to", "", "called number (request-URI user)")
		from := fs.String("from", "", "caller number")
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil || len(pos) != 1 {
			fmt.Fprintln(os.Stderr, "usage: switchboard dialplan route FILE --to N [--from N]")
			return exitError(2)
		}
		p, err := dialplan.Load(pos[0])
		if err != nil {
			printDialplanErrors(err)
			return exitError(1)
		}
		r, ok := p.Route(dialplan.CallInfo{To: *to, From: *from})
		if !ok {
			fmt.Println("no route: the call would get 404 Not Found")
			return nil
		}
		fmt.Printf("route %q (line %d) → %s\n", r.Name, r.Line, describeTarget(r.Target))
		return nil
	}
	fmt.Fprintf(os.Stderr, "unknown dialplan command %q\n", args[0])
	return exitError(2)
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
	case "play":
		return "play " + t.File
	case "reject":
		return fmt.Sprintf("reject %d %s", t.Status, t.Reason)
	case "agent":
		return "agent " + t.Agent
	}
	return t.Type
}
