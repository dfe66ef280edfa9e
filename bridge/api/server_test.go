package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voip/switchboard/bridge"
	"github.com/switchboard-voip/switchboard/media"
)

// fakeGateway stands in for *bridge.Gateway: the API's own logic is what is tested here;
// cmd/switchboard/api_test.go drives the real gateway.
type fakeGateway struct {
	calls    []bridge.CallInfo
	hungUp   []string
	draining bool
}

func (f *fakeGateway) Calls() []bridge.CallInfo { return f.calls }
func (f *fakeGateway) Active() int              { return len(f.calls) }
func (f *fakeGateway) Draining() bool           { return f.draining }
func (f *fakeGateway) Hangup(id, reason string) error {
	for _, c := range f.calls {
		if c.ID == id {
			f.hungUp = append(f.hungUp, id)
			return nil
		}
	}
	return bridge.ErrNoSuchCall
}

func do(t *testing.T, h http.Handler, method, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAuth(t *testing.T) {
	gw := &fakeGateway{}
	s := New(Config{Token: "s3cret", Gateway: gw, Metrics: prometheus.NewRegistry()})
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v1/calls", "", 401},
		{"GET", "/v1/calls", "wrong", 401},
		{"GET", "/v1/calls", "s3cret-and-more", 401},
		{"GET", "/v1/calls", "s3cre", 401},
		{"GET", "/v1/calls", "s3cret", 200},
		{"DELETE", "/v1/calls/x", "", 401},
		{"POST", "/v1/dialplan/reload", "", 401},
		{"GET", "/v1/nothing-here", "", 401}, // no route is revealed without the token
		{"GET", "/v1/nothing-here", "s3cret", 404},
		{"GET", "/debug/pprof/", "", 401},
		{"GET", "/debug/pprof/", "s3cret", 200},
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/metrics", "", 200},
	} {
		if w := do(t, s, tc.method, tc.path, tc.token); w.Code != tc.want {
			t.Errorf("%s %s token %q: %d, want %d (%s)", tc.method, tc.path, tc.token, w.Code, tc.want, w.Body)
		}
	}
	// With no token configured, nothing behind it opens, not even to an empty bearer.
	closed := New(Config{Gateway: gw})
	for _, tok := range []string{"", " ", "x"} {
		if w := do(t, closed, "GET", "/v1/calls", tok); w.Code != 401 {
			t.Errorf("no token configured, bearer %q: %d, want 401", tok, w.Code)
		}
	}
	r := httptest.NewRequest("GET", "/v1/calls", nil)
	r.Header.Set("Authorization", "Bearer ")
	w := httptest.NewRecorder()
	closed.ServeHTTP(w, r)
	if w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("empty bearer: %d, WWW-Authenticate %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

func TestCallsListAndHangup(t *testing.T) {
	start := time.Now().Add(-3 * time.Second)
	gw := &fakeGateway{calls: []bridge.CallInfo{{ID: "abc@host", From: "alice", To: "echo", Route: "echo", Target: "echo",
		State: bridge.StateUp, Start: start, Answer: start.Add(time.Second), Codec: "PCMU",
		Stats:   media.Stats{PacketsIn: 100, PacketsOut: 99, Lost: 2},
		Quality: media.Quality{MOS: 4.312, LossRatio: 0.02, Jitter: 1500 * time.Microsecond}}}}
	s := New(Config{Token: "t", Gateway: gw})
	w := do(t, s, "GET", "/v1/calls", "t")
	var body struct{ Calls []callJSON }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Calls) != 1 {
		t.Fatalf("list: %v %s", err, w.Body)
	}
	c := body.Calls[0]
	if c.ID != "abc@host" || c.State != "answered" || c.Quality == nil || c.Quality.MOS != 4.31 ||
		c.Quality.JitterMs != 1.5 || c.Quality.PacketsIn != 100 || c.DurationS < 1.9 {
		t.Fatalf("call %+v quality %+v", c, c.Quality)
	}
	if w := do(t, s, "DELETE", "/v1/calls/abc@host", "t"); w.Code != 202 || len(gw.hungUp) != 1 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w := do(t, s, "DELETE", "/v1/calls/nope", "t"); w.Code != 404 {
		t.Fatalf("delete unknown: %d", w.Code)
	}
}

func TestReadyz(t *testing.T) {
	gw := &fakeGateway{}
	s := New(Config{Gateway: gw, MaxCalls: 2})
	check := func(want int, reason string) {
		t.Helper()
		w := do(t, s, "GET", "/readyz", "")
		if w.Code != want || !strings.Contains(w.Body.String(), reason) {
			t.Fatalf("readyz: %d %s, want %d %q", w.Code, w.Body, want, reason)
		}
	}
	check(200, `"ready":true`)
	gw.calls = make([]bridge.CallInfo, 2)
	check(503, "at capacity")
	gw.calls = nil
	gw.draining = true
	check(503, "draining")
}

func TestReload(t *testing.T) {
	var err error
	s := New(Config{Token: "t", Gateway: &fakeGateway{}, Reload: func() error { return err }})
	if w := do(t, s, "POST", "/v1/dialplan/reload", "t"); w.Code != 200 {
		t.Fatalf("reload: %d", w.Code)
	}
	err = errTest
	if w := do(t, s, "POST", "/v1/dialplan/reload", "t"); w.Code != 422 || !strings.Contains(w.Body.String(), "dialplan.yaml:3:1") {
		t.Fatalf("refused reload: %d %s", w.Code, w.Body)
	}
}

var errTest = &testErr{}

type testErr struct{}

func (*testErr) Error() string { return "dialplan.yaml:3:1: routes: bad" }
