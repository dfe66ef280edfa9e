package sip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// referHandler answers, transfers the caller to target and reports what Refer said.
func referHandler(r *callRecord, target string, result chan<- error) Handler {
	return r.handler(func(c *InboundCall) {
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(c.Context(), 10*time.Second)
		defer cancel()
		err := c.Refer(ctx, target)
		result <- err
		if err == nil {
			_ = c.Hangup("transferred")
			return
		}
		<-c.Context().Done()
	})
}

// sipp accepts the REFER (checking Refer-To names bob at its own host), sends
// NOTIFY 100 then 200, and gets our BYE.
func TestReferAcceptedThenBye(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			r := newRecord()
			result := make(chan error, 1)
			s := testServer(t, referHandler(r, "bob", result))
			args := []string{"-s", "transfer"}
			if transport == "tcp" {
				args = append(args, "-t", "t1")
			}
			if err := sippScenario(t, s.Addr(transport), "refer_accept.xml", args...); err != nil {
				t.Fatalf("sipp refer scenario: %v", err)
			}
			if err := <-result; err != nil {
				t.Fatalf("Refer = %v, want nil after NOTIFY 200", err)
			}
			c := r.waitEnded(t)
			r.check(t)
			if by, cause := c.EndCause(); by != "gateway" || cause != "transferred" {
				t.Errorf("EndCause = %q %q, want gateway transferred", by, cause)
			}
		})
	}
}

// sipp refuses the REFER with 603: Refer reports it, and the call stays up
// until the caller hangs up.
func TestReferDeclinedKeepsCall(t *testing.T) {
	t.Parallel()
	r := newRecord()
	result := make(chan error, 1)
	s := testServer(t, referHandler(r, "sip:bob@127.0.0.1:5099", result))
	if err := sippScenario(t, s.Addr("udp"), "refer_decline.xml", "-s", "transfer"); err != nil {
		t.Fatalf("sipp refer scenario: %v", err)
	}
	var se *StatusError
	if err := <-result; !errors.As(err, &se) || se.Code != 603 {
		t.Fatalf("Refer = %v, want StatusError 603", err)
	}
	c := r.waitEnded(t)
	r.check(t)
	if by, cause := c.EndCause(); by != "caller" || cause != "bye" {
		t.Errorf("EndCause = %q %q, want caller bye (the call must survive a refused transfer)", by, cause)
	}
}

func TestReferBeforeAnswer(t *testing.T) {
	c := &InboundCall{}
	if err := c.Refer(context.Background(), "bob"); !errors.Is(err, ErrNotAnswered) {
		t.Fatalf("Refer before answer = %v, want ErrNotAnswered", err)
	}
}

func TestReferTarget(t *testing.T) {
	var contact sip.Uri
	if err := sip.ParseUri("sip:alice@198.51.100.7:5080;transport=tcp", &contact); err != nil {
		t.Fatal(err)
	}
	c := &InboundCall{dlg: &dialog{remoteTarget: contact}}
	for _, tc := range []struct{ in, want string }{
		{"+15550100", "sip:+15550100@198.51.100.7:5080;transport=tcp"},
		{"bob", "sip:bob@198.51.100.7:5080;transport=tcp"},
		{"sip:carol@pbx.example.com", "sip:carol@pbx.example.com"},
		{"sips:dave@example.com:5061", "sips:dave@example.com:5061"},
		{"tel:+15550100", "tel:+15550100"},
		{"", ""},
		{"bob smith", ""},
		{"http://x", ""},
		{"tel:", ""},
	} {
		got, err := c.referTarget(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrBadReferTarget) {
				t.Errorf("referTarget(%q) = %q, %v; want ErrBadReferTarget", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("referTarget(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSipfragStatus(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
	}{
		{"SIP/2.0 200 OK\r\n", 200},
		{"SIP/2.0 100 Trying", 100},
		{"\r\nSIP/2.0 486 Busy Here\r\nVia: x\r\n", 486},
		{"", 0},
		{"hello", 0},
		{"SIP/2.0 abc", 0},
		{"SIP/2.0 99 Low", 0},
	} {
		if got := sipfragStatus([]byte(tc.body)); got != tc.want {
			t.Errorf("sipfragStatus(%q) = %d, want %d", tc.body, got, tc.want)
		}
	}
}
