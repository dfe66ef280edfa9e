package main

// Call quality (RTCP, E-model MOS, Prometheus histograms) and call recording,
// end to end through the real binary.

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// Two clean loopback calls to the echo route, one from baresip and one from
// `switchboard dial`, each long enough for RTCP both ways: /metrics then holds
// one observation per call in each quality histogram, with top-of-scale values.
func TestCallQualityMetrics(t *testing.T) {
	g := startGateway(t, gwOptions{})
	dir := t.TempDir()
	tone := filepath.Join(dir, "tone.wav")
	writeTone(t, tone, 1000, 8000, 12*time.Second)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		baresipCall(t, "sip:echo@"+g.sipAddr(), "PCMU", tone, 13)
	}()
	go func() {
		defer wg.Done()
		out, err := runTool(t, 40*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(), "--play", tone, "--seconds", "13")
		if err != nil {
			t.Errorf("dial: %v\n%s", err, out)
		}
	}()
	wg.Wait()
	waitFor(t, 5*time.Second, "both calls ended", func() bool { return g.metrics()["switchboard_calls_active"] == 0 })

	m := g.metrics()
	for _, h := range []string{"switchboard_call_mos", "switchboard_call_loss_ratio", "switchboard_call_jitter_seconds", "switchboard_call_rtt_seconds"} {
		if n := m[h+"_count"]; n != 2 {
			t.Errorf("%s_count = %v, want 2 (one per call)", h, n)
		}
	}
	mean := func(h string) float64 { return m[h+"_sum"] / max(m[h+"_count"], 1) }
	if v := mean("switchboard_call_mos"); v < 4.0 || v > 4.5 {
		t.Errorf("mean MOS %.2f, want above 4 on a clean loopback call", v)
	}
	if v := m[`switchboard_call_mos_bucket{le="4"}`]; v != 0 {
		t.Errorf("%v calls with MOS ≤ 4 on clean loopback", v)
	}
	if v := mean("switchboard_call_loss_ratio"); v > 0.01 {
		t.Errorf("mean loss ratio %.4f on loopback, want ~0", v)
	}
	if v := mean("switchboard_call_jitter_seconds"); v <= 0 || v > 0.02 {
		t.Errorf("mean jitter %.4f s, want a measured value under 20 ms on loopback", v)
	}
	if v := mean("switchboard_call_rtt_seconds"); v <= 0 || v > 0.05 {
		t.Errorf("mean RTT %.4f s, want a measured value under 50 ms on loopback", v)
	}
	t.Logf("MOS %.2f, loss %.4f, jitter %.2f ms, RTT %.2f ms (means over %v calls)", mean("switchboard_call_mos"),
		mean("switchboard_call_loss_ratio"), 1000*mean("switchboard_call_jitter_seconds"),
		1000*mean("switchboard_call_rtt_seconds"), m["switchboard_call_mos_count"])

	// Each call's final log line carries its quality.
	ended := 0
	for _, line := range strings.Split(g.logs.String(), "\n") {
		if !strings.Contains(line, `msg="call ended"`) {
			continue
		}
		ended++
		if i := strings.Index(line, "quality."); i >= 0 {
			t.Logf("call ended … %s", line[i:])
		}
		mos := regexp.MustCompile(`quality\.mos=([0-9.]+)`).FindStringSubmatch(line)
		rtt := regexp.MustCompile(`quality\.rtt=(\S+)`).FindStringSubmatch(line)
		if mos == nil || rtt == nil || !strings.Contains(line, "quality.jitter=") || !strings.Contains(line, "quality.loss=") {
			t.Errorf("call ended line without quality: %s", line)
			continue
		}
		if v, _ := strconv.ParseFloat(mos[1], 64); v < 4 {
			t.Errorf("call ended with MOS %v: %s", v, line)
		}
		if d, err := time.ParseDuration(rtt[1]); err != nil || d <= 0 {
			t.Errorf("call ended without an RTT: %s", line)
		}
	}
	if ended != 2 {
		t.Errorf("%d call ended lines, want 2", ended)
	}
}

// readStereo reads a 16-bit stereo WAV into its two channels.
func readStereo(t *testing.T, path string) (rate int, left, right []int16) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s: not a WAV file", path)
	}
	channels := 0
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:]))
		body := b[p+8 : min(p+8+size, len(b))]
		switch id {
		case "fmt ":
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
			if bits := binary.LittleEndian.Uint16(body[14:]); bits != 16 {
				t.Fatalf("%s: %d-bit samples, want 16", path, bits)
			}
		case "data":
			if channels != 2 {
				t.Fatalf("%s: %d channels, want a stereo recording", path, channels)
			}
			for i := 0; i+4 <= len(body); i += 4 {
				left = append(left, int16(binary.LittleEndian.Uint16(body[i:])))
				right = append(right, int16(binary.LittleEndian.Uint16(body[i+2:])))
			}
			return rate, left, right
		}
		p += 8 + size + size&1
	}
	t.Fatalf("%s: no data chunk", path)
	return
}

// envelope is the level of s at freq in 5 ms blocks (Goertzel power, in dB).
func envelope(s []int16, rate int, freq float64) []float64 {
	n := rate / 200
	var env []float64
	for i := 0; i+n <= len(s); i += n {
		env = append(env, 10*math.Log10(pcm.Goertzel(s[i:i+n], rate, freq)+1e-9))
	}
	return env
}

// onsets are the blocks where env rises through the level halfway (in dB)
// between its floor and its peak after at least 100 ms below it: burst starts,
// not a dropout inside a burst on a loaded machine.
func onsets(env []float64) []int {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range env {
		lo, hi = min(lo, v), max(hi, v)
	}
	th := (lo + hi) / 2
	const quiet = 20 // blocks of 5 ms
	var out []int
	below := quiet // the start of the recording counts as quiet
	for i, v := range env {
		if v < th {
			below++
			continue
		}
		if below >= quiet {
			out = append(out, i)
		}
		below = 0
	}
	return out
}

// burstTone is a 1 kHz tone switched on and off every period, n times.
func burstTone(t *testing.T, path string, rate int, period time.Duration, n int) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	w, err := pcm.NewWAVWriter(f, rate, 1)
	must(t, err)
	k := int(period.Seconds() * float64(rate))
	on := pcm.Tone(1000, rate, k, 0.3)
	off := make([]int16, k)
	for range n {
		must(t, w.Write(on))
		must(t, w.Write(off))
	}
	must(t, w.Close())
}

// echoDelay is the most the echo target may delay audio: one tick of its
// playout queue.
const echoDelay = pcm.FrameDuration

// An echo call on a route with record: true leaves a stereo WAV named after the
// call: the caller's tone bursts left, the echoed bursts right, their onsets
// within 40 ms plus the echo delay of each other.
func TestRecordingEchoAligned(t *testing.T) {
	g := startGateway(t, gwOptions{
		dialplan: `routes:
  - name: echo-recorded
    match: { to: echo }
    target: { type: echo }
    record: true
`,
		extra: "recordings: { dir: calls }\n",
	})
	dir := t.TempDir()
	in := filepath.Join(dir, "bursts.wav")
	const bursts = 5
	burstTone(t, in, 8000, 300*time.Millisecond, bursts)
	out, err := runTool(t, 30*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(), "--play", in)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, out)
	}
	var line string
	waitFor(t, 5*time.Second, "the call ended line", func() bool {
		for _, l := range strings.Split(g.logs.String(), "\n") {
			if strings.Contains(l, `msg="call ended"`) {
				line = l
				return true
			}
		}
		return false
	})
	mp := regexp.MustCompile(`recording\.path=("(?:[^"\\]|\\.)*"|\S+)`).FindStringSubmatch(line)
	if mp == nil {
		t.Fatalf("no recording path in the final log line: %s", line)
	}
	path := mp[1]
	if p, err := strconv.Unquote(path); err == nil {
		path = p
	}
	callID := regexp.MustCompile(`call_id=(\S+)`).FindStringSubmatch(line)
	if filepath.Dir(path) != filepath.Join(g.dir, "calls") || callID == nil || !strings.Contains(path, strings.Trim(callID[1], `"`)) {
		t.Fatalf("recording %s: want it in %s, named with the call id (%v)", path, filepath.Join(g.dir, "calls"), callID)
	}
	if !strings.Contains(line, "recording.dropped_frames=0") {
		t.Errorf("frames dropped from the recording: %s", line)
	}

	rate, left, right := readStereo(t, path)
	if rate != 8000 {
		t.Fatalf("recording rate %d, want 8000", rate)
	}
	for name, ch := range map[string][]int16{"left (caller)": left, "right (sent)": right} {
		span := toneSpan(ch, rate)
		if f := pcm.DominantFrequency(span, rate); math.Abs(f-1000) > 20 {
			t.Fatalf("%s channel: dominant %.0f Hz, want the 1 kHz tone", name, f)
		}
	}
	lOn, rOn := onsets(envelope(left, rate, 1000)), onsets(envelope(right, rate, 1000))
	if len(lOn) != bursts || len(rOn) != bursts {
		t.Fatalf("tone onsets: %d left, %d right, want %d each (left %v right %v)", len(lOn), len(rOn), bursts, lOn, rOn)
	}
	const block = 5 * time.Millisecond
	limit := 40*time.Millisecond + echoDelay
	var lags []string
	for i := range lOn {
		lag := time.Duration(rOn[i]-lOn[i]) * block
		lags = append(lags, lag.String())
		if lag < -40*time.Millisecond || lag > limit {
			t.Errorf("burst %d: the echo starts %v after the caller's tone, want within %v", i, lag, limit)
		}
	}
	t.Logf("%s: %.1f s stereo; right-minus-left onset lags %v", filepath.Base(path), float64(len(left))/float64(rate), lags)
	if got, want := time.Duration(len(left))*time.Second/time.Duration(rate), time.Duration(bursts)*600*time.Millisecond; got < want {
		t.Errorf("recording is %v long, want at least the %v played", got, want)
	}
}
