package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every dialplan shipped in configs/ passes `switchboard dialplan check`.
func TestShippedDialplansCheck(t *testing.T) {
	files, err := filepath.Glob("../../configs/dialplan*.yaml")
	must(t, err)
	if len(files) < 2 {
		t.Fatalf("found %d shipped dialplans", len(files))
	}
	for _, f := range files {
		out, err := runTool(t, 10*time.Second, ".", binPath, "dialplan", "check", f)
		if err != nil || !strings.Contains(out, "ok") {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

// `switchboard dialplan route` explains where a call goes.
func TestDialplanRouteCommand(t *testing.T) {
	cases := []struct {
		file     string
		args     []string
		want     string
		wantLine string
	}{
		{"dialplan.yaml", []string{"--to", "echo"}, `route "echo-test"`, "→ echo"},
		{"dialplan.yaml", []string{"--to", "hello"}, `route "hello"`, "→ play"},
		{"dialplan.yaml", []string{"--to", "+4930123"}, `route "default"`, "→ agent default"},
		{"dialplan-bots.yaml", []string{"--to", "+18005550100"}, `route "support-bot"`, "→ agent"},
		{"dialplan-bots.yaml", []string{"--to", "2000"}, `route "native-bot"`, "→ agent"},
		{"dialplan-bots.yaml", []string{"--to", "2000", "--from", "anonymous"}, `route "native-bot"`, ""}, // file order: native-bot first
		{"dialplan-bots.yaml", []string{"--to", "5", "--from", "anonymous"}, `route "blocked"`, "→ reject 403"},
	}
	for _, c := range cases {
		args := append([]string{"dialplan", "route", "../../configs/" + c.file}, c.args...)
		out, err := runTool(t, 10*time.Second, ".", binPath, args...)
		if err != nil || !strings.Contains(out, c.want) || !strings.Contains(out, c.wantLine) {
			t.Errorf("%s %v: %v\n%s", c.file, c.args, err, out)
		}
	}
}

// A broken dialplan: every error with file:line:col, exit status 1.
func TestDialplanCheckReportsErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	must(t, os.WriteFile(bad, []byte(`routes:
  - name: a
    match: { to: "~^(unclosed" }
    target: { type: echo }
  - name: b
    match: { to: x }
    target: { type: teleport }
    colour: blue
`), 0o644))
	out, err := runTool(t, 10*time.Second, ".", binPath, "dialplan", "check", bad)
	if err == nil {
		t.Fatalf("check of a broken dialplan exited 0:\n%s", out)
	}
	for _, want := range []string{"bad.yaml:3:", "bad.yaml:7:", "bad.yaml:8:", "teleport", "colour"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// `dialplan check` prints each problem as file:line:col: message on stderr,
// in file order, and exits 1.
func TestDialplanCheckLineNumbers(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	must(t, os.WriteFile(bad, []byte(`routes:
  - name: unknown-key
    match: { to: "1000", caller: x }
    target: { type: echo }
  - name: bad-regex
    match: { from: "~^(anon" }
    target: { type: echo }
  - name: unknown-type
    match: { to: "2000" }
    target: { type: teleport }
  - name: missing-field
    match: { to: "3000" }
    target: { type: play }
  - name: time-nonsense
    match:
      to: "4000"
      time: { days: [mon-fri, funday], from: "18:00", to: "09:00", tz: Mars/Olympus }
    target: { type: echo }
  - name: overlapping
    match:
      to: "5000"
      time:
        - { days: [mon-fri], from: "09:00", to: "17:00", tz: UTC }
        - { days: [fri], from: "12:00", to: "13:00", tz: UTC }
    target: { type: transfer, to: "+49 30 123456" }
`), 0o644))
	cmd := exec.Command(binPath, "dialplan", "check", bad)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	want := []string{
		`:3:26: match: unknown key "caller"`,
		`:6:20: match.from: bad regular expression "^(anon"`,
		`:10:21: unknown target type "teleport"`,
		`:13:13: target of type play needs file:`,
		`:17:31: match.time.days: unknown day "funday"`,
		`:17:59: match.time.to: 09:00 is before from 18:00; for a window that crosses midnight write to: "09:00+1"`,
		`:17:72: match.time.tz: unknown time zone "Mars/Olympus"`,
		`:24:11: match.time: window overlaps the one at line 23 (both hold fri 12:00)`,
		`:25:13: target of type transfer to a number needs trunk:`,
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), stderr.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], bad+w) {
			t.Errorf("line %d = %q\nwant prefix %q", i+1, lines[i], bad+w)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q, want nothing", stdout.String())
	}
}

// `dialplan route` through the real binary: the route a call gets by number
// spelling, source address, header, trunk and time of day.
func TestDialplanRouteMatchers(t *testing.T) {
	f := filepath.Join(t.TempDir(), "routes.yaml")
	must(t, os.WriteFile(f, []byte(`routes:
  - name: tollfree
    match: { to: "+1 (800) 555-0100" }
    target: { type: agent, agent: default }
    ring: 2s
  - name: berlin
    match: { to: "+49 30*", from: "~^49" }
    target: { type: transfer, to: "sip:desk@pbx.example.com", trunk: carrier }
  - name: twilio
    match:
      source: [54.172.60.0/30, 54.244.51.0/30]
      headers: { X-Twilio-AccountSid: AC123 }
    target: { type: echo }
  - name: telnyx
    match: { trunk: telnyx }
    target: { type: transfer, to: "0049 30 999", trunk: telnyx }
    max_duration: 30m
  - name: office
    match:
      to: "7000"
      time: { days: [mon-fri], from: "09:00", to: "17:30", tz: Europe/Berlin }
    target: { type: echo }
  - name: night
    match:
      to: "7000"
      time: { days: [mon-fri], from: "22:00", to: "06:00+1", tz: America/Los_Angeles }
    target: { type: reject, status: 480, reason: Closed }
default:
  target: { type: reject, status: 404, reason: Not Found }
`), 0o644))
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--to", "+18005550100"}, []string{`route "tollfree" (line 2) → agent default`, "ring: 2s"}},
		{[]string{"--to", "0018005550100"}, []string{`route "tollfree"`}},
		{[]string{"--to", "18005550100"}, []string{`route "tollfree"`}},
		{[]string{"--to", "1-800-555-0100"}, []string{`route "tollfree"`}},
		{[]string{"--to", "+18005550199"}, []string{`route "default"`, "reject 404"}},
		{[]string{"--to", "004930123", "--from", "+49 89 1"}, []string{`route "berlin" (line 6) → transfer sip:desk@pbx.example.com via trunk carrier`}},
		{[]string{"--to", "+4930123", "--from", "+1 212"}, []string{`route "default"`}},
		{[]string{"--to", "x", "--source", "54.244.51.2", "--header", "X-Twilio-AccountSid=AC123"}, []string{`route "twilio" (line 9) → echo`}},
		{[]string{"--to", "x", "--source", "54.244.51.2", "--header", "x-twilio-accountsid: AC123"}, []string{`route "twilio"`}},
		{[]string{"--to", "x", "--source", "54.244.51.4", "--header", "X-Twilio-AccountSid=AC123"}, []string{`route "default"`}},
		{[]string{"--to", "x", "--source", "54.172.60.1"}, []string{`route "default"`}},
		{[]string{"--to", "x", "--trunk", "telnyx"}, []string{`route "telnyx" (line 14) → transfer +4930999 via trunk telnyx`, "max_duration: 30m0s"}},
		{[]string{"--to", "x", "--trunk", "twilio"}, []string{`route "default"`}},
		// 2025-03-05 is a Wednesday; Berlin is UTC+1, Los Angeles UTC-8 then.
		{[]string{"--to", "7000", "--at", "2025-03-05T09:00:00+01:00"}, []string{`route "office" (line 18)`}},
		{[]string{"--to", "7000", "--at", "2025-03-05T16:29:00Z"}, []string{`route "office"`}},
		{[]string{"--to", "7000", "--at", "2025-03-05T16:30:00Z"}, []string{`route "default"`}},
		{[]string{"--to", "7000", "--at", "2025-03-06T07:00:00Z"}, []string{`route "night" (line 23) → reject 480 Closed`}}, // Wed 23:00 in LA
		{[]string{"--to", "7000", "--at", "2025-03-08T13:00:00Z"}, []string{`route "night"`}},                               // Sat 05:00 in LA, after midnight of Friday's window
		{[]string{"--to", "7000", "--at", "2025-03-09T07:00:00Z"}, []string{`route "default"`}},                             // Sat 23:00 in LA: not mon-fri
	}
	for _, c := range cases {
		args := append([]string{"dialplan", "route", f}, c.args...)
		out, err := runTool(t, 10*time.Second, ".", binPath, args...)
		if err != nil {
			t.Errorf("%v: %v\n%s", c.args, err, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, w, out)
			}
		}
	}
}
