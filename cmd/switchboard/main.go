// Command switchboard is the SIP gateway: `switchboard run` serves calls,
// `switchboard dial` is a small test phone, `switchboard dialplan` checks and
// explains dialplans.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: switchboard <command> [flags]

commands:
  run [-c FILE]                     serve calls (default config: configs/switchboard.yaml)
  dial SIP-URI [--play in.wav] [--record out.wav] [--seconds N]
                                    place a test call
  dialplan check FILE               report every error in a dialplan
  dialplan route FILE --to N [--from N]
                                    show the route a call would take
  cdr [-c FILE] list [--limit N] [--since T]
                                    show the latest call detail records
  cdr [-c FILE] export [--format csv|json] [--since T]
                                    export call detail records
  version                           print the version
`

func main() {
	if err := runCommand(os.Args[1:]); err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a status after the command printed its own report.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func runCommand(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitError(2)
	}
	switch args[0] {
	case "run":
		return runGateway(args[1:])
	case "dial":
		return runDial(args[1:])
	case "dialplan":
		return runDialplan(args[1:])
	case "cdr":
		return runCDR(args[1:])
	case "version":
		fmt.Println("switchboard", version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", args[0], usage)
	return exitError(2)
}

// parseInterspersed parses flags that may stand before or after positional
// arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
