package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testAPIToken = "t0ken-for-the-admin-api"

// startAPIGateway runs a gateway whose admin API token comes from the environment.
func startAPIGateway(t *testing.T, o gwOptions) *gateway {
	t.Setenv("SWITCHBOARD_TEST_API_TOKEN", testAPIToken) // the gateway process inherits it
	o.extra += "api: { token_env: SWITCHBOARD_TEST_API_TOKEN }\n"
	return startGateway(t, o)
}

// api calls the admin API and returns the status and body.
func (g *gateway) api(method, path, token string) (int, string) {
	g.t.Helper()
	req, err := http.NewRequest(method, "http://"+g.httpAddr+path, nil)
	must(g.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	must(g.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type apiCall struct {
	ID       string `json:"id"`
	RecordID string `json:"record_id"`
	To       string `json:"to"`
	Route    string `json:"route"`
	State    string `json:"state"`
	Codec    string `json:"codec"`
	Quality  *struct {
		PacketsIn  uint64  `json:"packets_in"`
		PacketsOut uint64  `json:"packets_out"`
		MOS        float64 `json:"mos"`
		LossRatio  float64 `json:"loss_ratio"`
		JitterMs   float64 `json:"jitter_ms"`
	} `json:"quality"`
}

func (g *gateway) apiCalls() []apiCall {
	g.t.Helper()
	code, body := g.api("GET", "/v1/calls", testAPIToken)
	if code != 200 {
		g.t.Fatalf("GET /v1/calls: %d %s", code, body)
	}
	var out struct{ Calls []apiCall }
	must(g.t, json.Unmarshal([]byte(body), &out))
	return out.Calls
}

// The admin API: 401 without the token; the list shows a live call with its quality;
// DELETE hangs it up (the caller gets our BYE); reload; pprof behind the token;
// /readyz 503 while draining.
func TestAdminAPI(t *testing.T) {
	g := startAPIGateway(t, gwOptions{drain: "3s"})

	for _, c := range []struct{ method, path, token string }{
		{"GET", "/v1/calls", ""}, {"GET", "/v1/calls", "wrong"}, {"GET", "/v1/calls", testAPIToken + "x"},
		{"DELETE", "/v1/calls/anything", ""}, {"POST", "/v1/dialplan/reload", ""}, {"GET", "/debug/pprof/", ""},
		{"GET", "/debug/pprof/goroutine?debug=1", "nope"},
	} {
		if code, body := g.api(c.method, c.path, c.token); code != 401 {
			t.Errorf("%s %s with token %q: %d %s, want 401", c.method, c.path, c.token, code, body)
		}
	}
	if code, _ := g.api("GET", "/debug/pprof/goroutine?debug=1", testAPIToken); code != 200 {
		t.Errorf("pprof with the token: %d", code)
	}
	if code, body := g.api("GET", "/readyz", ""); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("readyz idle: %d %s", code, body)
	}

	// A call with audio both ways, long enough to be hung up from the API.
	dir := t.TempDir()
	in, heard := filepath.Join(dir, "x.wav"), filepath.Join(dir, "y.wav")
	writeTone(t, in, 1000, 8000, 20*time.Second)
	started := time.Now()
	done := make(chan string, 1)
	go func() {
		out, _ := runTool(t, 40*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(), "--play", in,
			"--record", heard, "--seconds", "20")
		done <- out
	}()
	var call apiCall
	waitFor(t, 10*time.Second, "the call in GET /v1/calls with live quality", func() bool {
		cs := g.apiCalls()
		if len(cs) != 1 || cs[0].State != "answered" || cs[0].Quality == nil || cs[0].Quality.PacketsIn < 100 {
			return false
		}
		call = cs[0]
		return true
	})
	t.Logf("live call: %+v quality %+v", call, *call.Quality)
	if call.To != "echo" || call.Route != "echo" || call.Codec != "PCMU" || call.Quality.MOS < 4 ||
		call.Quality.PacketsOut < 50 || call.RecordID == "" {
		t.Fatalf("call as listed: %+v quality %+v", call, *call.Quality)
	}
	if code, _ := g.api("DELETE", "/v1/calls/"+url.PathEscape("no-such-call"), testAPIToken); code != 404 {
		t.Errorf("DELETE of an unknown call: %d, want 404", code)
	}
	if code, body := g.api("DELETE", "/v1/calls/"+url.PathEscape(call.ID), testAPIToken); code != 202 {
		t.Fatalf("DELETE /v1/calls/%s: %d %s", call.ID, code, body)
	}
	select {
	case out := <-done:
		if !strings.Contains(out, "by=callee") {
			t.Fatalf("the caller did not get the gateway's BYE:\n%s", out)
		}
		if d := time.Since(started); d > 12*time.Second {
			t.Fatalf("the call ran %v; the DELETE did not end it", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the call is still up 15 s after DELETE")
	}
	checkTone(t, heard, 1000, time.Second) // the audio flowed until the hang-up
	waitFor(t, 5*time.Second, "no calls listed", func() bool { return len(g.apiCalls()) == 0 })
	if !strings.Contains(g.logs.String(), "hung up by admin API") {
		t.Error("the call's end cause does not name the admin API")
	}

	// Reload: a new route is taken at once; a broken file is refused with its line.
	plan := filepath.Join(g.dir, "dialplan.yaml")
	must(t, os.WriteFile(plan, []byte(defaultTestDialplan+"  # reloaded\n"), 0o644))
	if code, body := g.api("POST", "/v1/dialplan/reload", testAPIToken); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	must(t, os.WriteFile(plan, []byte("routes:\n  - name: x\n    target: { type: nonsense }\n"), 0o644))
	if code, body := g.api("POST", "/v1/dialplan/reload", testAPIToken); code != 422 || !strings.Contains(body, "dialplan.yaml:3") {
		t.Fatalf("reload of a broken file: %d %s, want 422 naming dialplan.yaml:3", code, body)
	}

	// Drain: a running call keeps the gateway up; /readyz says 503 meanwhile.
	go func() {
		out, _ := runTool(t, 30*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(), "--seconds", "10")
		done <- out
	}()
	waitFor(t, 10*time.Second, "the second call", func() bool { return g.metrics()["switchboard_calls_active"] == 1 })
	must(t, g.cmd.Process.Signal(syscall.SIGTERM))
	waitFor(t, 2*time.Second, "readyz 503 while draining", func() bool {
		code, body := g.api("GET", "/readyz", "")
		return code == 503 && strings.Contains(body, "draining")
	})
	if code, _ := g.api("GET", "/healthz", ""); code != 200 {
		t.Errorf("healthz while draining: %d, want 200 (alive, just not ready)", code)
	}
	<-done
}

// /readyz is 503 at max_calls, 200 again when a call ends.
func TestReadyzAtCapacity(t *testing.T) {
	g := startAPIGateway(t, gwOptions{sipExtra: "  max_calls: 1\n"})
	done := make(chan string, 1)
	go func() {
		out, _ := runTool(t, 30*time.Second, t.TempDir(), binPath, "dial", "sip:echo@"+g.sipAddr(), "--seconds", "3")
		done <- out
	}()
	waitFor(t, 10*time.Second, "readyz 503 at capacity", func() bool {
		code, body := g.api("GET", "/readyz", "")
		return code == 503 && strings.Contains(body, "at capacity")
	})
	// A second call now gets 503 from the SIP side too.
	out, err := runTool(t, 10*time.Second, t.TempDir(), binPath, "dial", "sip:echo@"+g.sipAddr(), "--seconds", "1")
	if err == nil || !strings.Contains(out, "503") {
		t.Errorf("a call beyond max_calls: %v\n%s", err, out)
	}
	<-done
	waitFor(t, 5*time.Second, "readyz 200 again", func() bool { code, _ := g.api("GET", "/readyz", ""); return code == 200 })
	if n := g.metrics()[fmt.Sprintf(`switchboard_sip_rejected_total{code="503",reason="max_calls"}`)]; n != 1 {
		t.Errorf("max_calls rejections counted: %v, want 1", n)
	}
}
