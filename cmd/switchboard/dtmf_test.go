package main

// DTMF end to end: sipp presses keys (RFC 4733 captures and SIP INFO) on a call
// to the echo route; the gateway reports each digit once, and the echo sends
// them back as RFC 4733 events that tshark's RTP-event dissector decodes.

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDTMFEndToEnd(t *testing.T) {
	needTool(t, "tshark")
	g := startGateway(t, gwOptions{})
	dir := sippDir(t)
	scenario, err := filepath.Abs("testdata/dtmf_call.xml")
	must(t, err)
	mediaPort := freePort(t)
	capture := startRTPEventCapture(t, mediaPort, 101)

	out, err := runTool(t, 40*time.Second, dir, "sipp", g.sipAddr(), "-sf", scenario, "-s", "echo",
		"-m", "1", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mp", fmt.Sprint(mediaPort),
		"-nostdin", "-timeout", "30s", "-timeout_error")
	if err != nil {
		t.Fatalf("sipp: %v\n%s", err, tail(out))
	}
	events := capture.stop()

	// What the gateway heard: each key once, in order, with its source.
	const fromRTP, fromInfo = "0123456789#*", "ABCD"
	var rtp, info strings.Builder
	for _, m := range dtmfLogLine.FindAllStringSubmatch(g.logs.String(), -1) {
		switch m[2] {
		case "rfc4733":
			rtp.WriteString(m[1])
		case "info":
			info.WriteString(m[1])
		default:
			t.Errorf("dtmf log line with via=%s", m[2])
		}
	}
	if rtp.String() != fromRTP || info.String() != fromInfo {
		t.Errorf("gateway logged digits %q by RFC 4733 and %q by INFO, want %q and %q",
			rtp.String(), info.String(), fromRTP, fromInfo)
	}
	m := g.metrics()
	if got := m[`switchboard_dtmf_received_total{via="rfc4733"}`]; got != float64(len(fromRTP)) {
		t.Errorf("switchboard_dtmf_received_total{via=rfc4733} = %v, want %d", got, len(fromRTP))
	}
	if got := m[`switchboard_dtmf_received_total{via="info"}`]; got != float64(len(fromInfo)) {
		t.Errorf("switchboard_dtmf_received_total{via=info} = %v, want %d", got, len(fromInfo))
	}

	// What a real decoder makes of the digits the echo sent back.
	digits, problems := decodeEvents(events)
	for _, p := range problems {
		t.Error(p)
	}
	if digits != fromRTP+fromInfo {
		t.Errorf("tshark decoded %q from the gateway's RTP, want %q", digits, fromRTP+fromInfo)
	}
	t.Logf("heard %q + %q; tshark decoded %q from %d event packets we sent", rtp.String(), info.String(), digits, len(events))
}

// dtmfLogLine matches the gateway's line per received digit (slog text format).
var dtmfLogLine = regexp.MustCompile(`msg=dtmf .*?digit="?([0-9*#A-D])"? via=(\w+)`)

// rtpEvent is one telephone-event packet as tshark dissected it.
type rtpEvent struct {
	ts     uint32
	marker bool
	event  int
	end    bool
	dur    int
}

// decodeEvents groups packets into key presses by RTP timestamp, as a receiver
// does, and checks each: marker on the first packet, three end packets, each
// with the full 100 ms duration.
func decodeEvents(evs []rtpEvent) (string, []string) {
	const names = "0123456789*#ABCD"
	var digits strings.Builder
	var problems []string
	for i := 0; i < len(evs); {
		j := i
		ends := 0
		for ; j < len(evs) && evs[j].ts == evs[i].ts; j++ {
			e := evs[j]
			if e.event != evs[i].event {
				problems = append(problems, fmt.Sprintf("event at ts %d changes from %d to %d", e.ts, evs[i].event, e.event))
			}
			if e.end {
				ends++
				if e.dur != 800 {
					problems = append(problems, fmt.Sprintf("end of event %d with duration %d, want 800 (100 ms)", e.event, e.dur))
				}
			}
		}
		if evs[i].event < 0 || evs[i].event >= len(names) {
			problems = append(problems, fmt.Sprintf("event code %d", evs[i].event))
		} else {
			digits.WriteByte(names[evs[i].event])
		}
		if !evs[i].marker {
			problems = append(problems, fmt.Sprintf("first packet of event %d without the marker bit", evs[i].event))
		}
		if ends != 3 {
			problems = append(problems, fmt.Sprintf("event %d has %d end packets, want 3", evs[i].event, ends))
		}
		i = j
	}
	return digits.String(), problems
}

type eventCapture struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startRTPEventCapture runs tshark on loopback for UDP to port, dissecting it
// as RTP with telephone-event on pt, and returns once tshark is capturing.
func startRTPEventCapture(t testing.TB, port, pt int) *eventCapture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	c := &eventCapture{t: t, out: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.CommandContext(ctx, "tshark", "-i", "lo", "-l", "-n", "-a", "duration:80",
		"-f", fmt.Sprintf("udp dst port %d", port),
		"-d", fmt.Sprintf("udp.port==%d,rtp", port), "-o", fmt.Sprintf("rtpevent.event_payload_type_value:%d", pt),
		"-Y", "rtpevent", "-T", "fields", "-E", "separator=,",
		"-e", "rtp.timestamp", "-e", "rtp.marker", "-e", "rtpevent.event_id", "-e", "rtpevent.end_of_event", "-e", "rtpevent.duration")
	c.cmd.Stdout = c.out
	stderr, err := c.cmd.StderrPipe()
	must(t, err)
	must(t, c.cmd.Start())
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "Capturing on") {
				close(ready)
				signalled = true
			}
		}
		c.cmd.Wait()
		close(c.done)
	}()
	select {
	case <-ready:
	case <-c.done:
		t.Fatal("tshark exited before capturing")
	case <-time.After(20 * time.Second):
		t.Fatal("tshark not capturing after 20 s")
	}
	return c
}

// stop lets the last packets through, stops tshark and parses what it printed.
func (c *eventCapture) stop() []rtpEvent {
	time.Sleep(300 * time.Millisecond)
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	var evs []rtpEvent
	for _, line := range strings.Split(strings.TrimSpace(c.out.String()), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 5 {
			continue
		}
		ts, err1 := strconv.ParseUint(f[0], 10, 32)
		ev, err2 := strconv.Atoi(f[2])
		dur, err3 := strconv.Atoi(f[4])
		if err1 != nil || err2 != nil || err3 != nil {
			c.t.Fatalf("tshark line %q", line)
		}
		evs = append(evs, rtpEvent{ts: uint32(ts), marker: isTrue(f[1]), event: ev, end: isTrue(f[3]), dur: dur})
	}
	return evs
}

func isTrue(s string) bool { return s == "1" || s == "True" || s == "true" }
