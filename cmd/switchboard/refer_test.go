package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// transferBot is a fake Realtime model that, half a second into the call,
// asks for a transfer to sip:bob@127.0.0.1.
func transferBot(t *testing.T) *fakeOpenAI {
	return startFakeOpenAI(t, func(rc *rtConn) {
		time.Sleep(500 * time.Millisecond)
		rc.send(map[string]any{"type": "response.output_item.done", "response_id": "resp_1", "output_index": 0,
			"item": map[string]any{"id": "item_1", "type": "function_call", "name": "transfer_call", "call_id": "call_1",
				"arguments": `{"target":"sip:bob@127.0.0.1"}`}})
		rc.drain(15 * time.Second)
	})
}

// sippTransfer runs one of the sip package's REFER scenarios as the caller.
func sippTransfer(t *testing.T, g *gateway, scenario string) (string, error) {
	dir := sippDir(t)
	sf, err := filepath.Abs(filepath.Join("../../sip/testdata", scenario))
	must(t, err)
	return runTool(t, 30*time.Second, dir, "sipp", g.sipAddr(), "-sf", sf, "-s", "ai", "-m", "1",
		"-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "20s", "-timeout_error")
}

// The agent's transfer becomes a REFER within the caller's dialog (sipp checks
// Refer-To), sipp answers 202 and NOTIFYs 100 then 200, and the gateway ends
// its part of the call with a BYE.
func TestReferTransferAccepted(t *testing.T) {
	f := transferBot(t)
	t.Setenv("SB_TEST_OPENAI_KEY", "sk-e2e")
	g := startGateway(t, gwOptions{dialplan: openaiPlan(f.url(), "ai")})
	if out, err := sippTransfer(t, g, "refer_accept.xml"); err != nil {
		t.Fatalf("sipp (REFER, 202, NOTIFY 200, BYE expected): %v\n%s", err, tail(out))
	}
	waitFor(t, 5*time.Second, "the transfer in the log", func() bool {
		return strings.Contains(g.logs.String(), `msg=transferred`) &&
			strings.Contains(g.logs.String(), `cause="transferred to sip:bob@127.0.0.1"`)
	})
}

// The caller refuses the REFER (603): the call goes on, logged, until the
// caller hangs up.
func TestReferTransferDeclined(t *testing.T) {
	f := transferBot(t)
	t.Setenv("SB_TEST_OPENAI_KEY", "sk-e2e")
	g := startGateway(t, gwOptions{dialplan: openaiPlan(f.url(), "ai")})
	if out, err := sippTransfer(t, g, "refer_decline.xml"); err != nil {
		t.Fatalf("sipp (REFER refused, then our own BYE): %v\n%s", err, tail(out))
	}
	waitFor(t, 5*time.Second, "the failed transfer and the caller's hang-up in the log", func() bool {
		l := g.logs.String()
		return strings.Contains(l, `transfer failed; the call goes on`) && strings.Contains(l, `603`) &&
			strings.Contains(l, `msg="call ended"`) && strings.Contains(l, `by=caller`)
	})
}
