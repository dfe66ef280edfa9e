package bridge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/dialplan"
)

// fakeAgent fails Start with err, or starts a session that records its life.
type fakeAgent struct {
	err     error
	mu      sync.Mutex
	started int
	closed  int
	ctl     agent.Controls
	call    agent.Call
}

func (a *fakeAgent) Start(_ context.Context, call agent.Call, ctl agent.Controls) (agent.Session, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return nil, a.err
	}
	a.started++
	a.ctl, a.call = ctl, call
	return &fakeSession{a: a}, nil
}

func (a *fakeAgent) counts() (int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.started, a.closed
}

type fakeSession struct{ a *fakeAgent }

func (s *fakeSession) Audio([]int16, int) {}
func (s *fakeSession) Event(agent.Event)  {}
func (s *fakeSession) Close()             { s.a.mu.Lock(); s.a.closed++; s.a.mu.Unlock() }

// callControls counts Clear and Hangup.
type callControls struct {
	agent.Controls // nil: other methods are not used here
	mu             sync.Mutex
	cleared        int
	hangup         chan string
}

func (c *callControls) Clear()          { c.mu.Lock(); c.cleared++; c.mu.Unlock() }
func (c *callControls) Hangup(r string) { c.hangup <- r }

func newChain(status int, agents ...*fakeAgent) *chain {
	c := &chain{failStatus: status}
	for _, a := range agents {
		c.steps = append(c.steps, step{target: dialplan.Target{Type: dialplan.TypeAgent, Agent: "fake"}, agent: a})
	}
	return c
}

func TestChainFallsBackBeforeAnswer(t *testing.T) {
	down := &fakeAgent{err: errors.New("connect refused")}
	echo := &fakeAgent{}
	c := newChain(503, down, echo)
	s, err := c.Start(context.Background(), agent.Call{ID: "x"}, &callControls{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := echo.counts(); n != 1 {
		t.Fatalf("fallback started %d times", n)
	}
	s.Close()
	if _, n := echo.counts(); n != 1 {
		t.Fatalf("fallback closed %d times", n)
	}
}

func TestChainAllFailGivesStatus(t *testing.T) {
	c := newChain(480, &fakeAgent{err: errors.New("a down")}, &fakeAgent{err: errors.New("b down")})
	_, err := c.Start(context.Background(), agent.Call{}, &callControls{})
	if st, _ := failStatus(err); st != 480 || !strings.Contains(err.Error(), "a down") || !strings.Contains(err.Error(), "b down") {
		t.Fatalf("status %d, err %v", st, err)
	}
	// A reject fallback answers with its own status.
	c = newChain(503, &fakeAgent{err: errors.New("down")})
	c.steps = append(c.steps, step{target: dialplan.Target{Type: dialplan.TypeReject, Status: 486, Reason: "Busy Here"}})
	_, err = c.Start(context.Background(), agent.Call{}, &callControls{})
	if st, reason := failStatus(err); st != 486 || reason != "Busy Here" {
		t.Fatalf("status %d %q, err %v", st, reason, err)
	}
}

func TestChainFallsBackMidCall(t *testing.T) {
	bot := &fakeAgent{}
	echo := &fakeAgent{}
	c := newChain(503, bot, echo)
	ctl := &callControls{hangup: make(chan string, 1)}
	s, err := c.Start(context.Background(), agent.Call{}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	agent.Fail(bot.ctl, errors.New("bot connection lost"))
	agent.Fail(bot.ctl, errors.New("twice")) // one fallback per failed step
	deadline := time.Now().Add(2 * time.Second)
	for n, _ := echo.counts(); n == 0 && time.Now().Before(deadline); n, _ = echo.counts() {
		time.Sleep(5 * time.Millisecond)
	}
	if n, _ := echo.counts(); n != 1 {
		t.Fatalf("fallback started %d times", n)
	}
	if _, n := bot.counts(); n != 1 {
		t.Fatalf("lost session closed %d times", n)
	}
	ctl.mu.Lock()
	cleared := ctl.cleared
	ctl.mu.Unlock()
	if cleared != 1 {
		t.Fatalf("queue cleared %d times", cleared)
	}
	// The fallback is lost too, and nothing is left: hang up.
	agent.Fail(echo.ctl, errors.New("gone"))
	select {
	case r := <-ctl.hangup:
		if !strings.Contains(r, "gone") {
			t.Fatalf("hang-up reason %q", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no hang-up after the last target was lost")
	}
	s.Close()
}

func TestChainRendersParams(t *testing.T) {
	dp, err := dialplan.Parse("d.yaml", []byte(`default:
  target: {type: agent, agent: echo, protocol: twilio, url: "ws://127.0.0.1:1/", params: {who: '{{.From}}/{{.Header "X-Id"}}'}}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := dp.Default()
	fa := &fakeAgent{}
	c := &chain{steps: []step{{target: r.Target, agent: fa}}}
	s, err := c.Start(context.Background(), agent.Call{From: "alice", Headers: func(string) string { return "7" }}, &callControls{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := fa.call.Params["who"]; got != "alice/7" {
		t.Fatalf("params %v", fa.call.Params)
	}
}
