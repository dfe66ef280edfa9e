package main

import (
	"os"
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
