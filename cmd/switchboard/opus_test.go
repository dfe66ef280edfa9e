package main

// Opus on the trunk, end to end: a softphone with libopus (baresip's opus
// module) and our own dialler, both against the echo route.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// baresipCodecCall is baresipCall with one of baresip's codec modules
// (opus.so, g722.so) offering only codec, e.g. "opus" or "G722". It returns
// the WAV of what baresip heard and its output.
func baresipCodecCall(t testing.TB, uri, module, codec, wavIn string, seconds int) (heard, output string) {
	t.Helper()
	heard, output = runBaresip(t, baresipOpts{uri: uri, codec: codec, module: module, wav: wavIn, seconds: seconds})
	if heard == "" {
		t.Fatalf("baresip recorded nothing; its output:\n%s", output)
	}
	return heard, output
}

// writeStereoTone writes a 16-bit stereo WAV with the tone in both channels:
// baresip's aufile source wants the codec's channel count, 2 for opus.
func writeStereoTone(t testing.TB, path string, freq float64, rate int, d time.Duration) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	w, err := pcm.NewWAVWriter(f, rate, 2)
	must(t, err)
	mono := pcm.Tone(freq, rate, int(d.Seconds()*float64(rate)), 0.3)
	st := make([]int16, 2*len(mono))
	for i, v := range mono {
		st[2*i], st[2*i+1] = v, v
	}
	must(t, w.Write(st))
	must(t, w.Close())
}

// A softphone offering only Opus (sending real stereo) calls the echo route
// and hears its 1 kHz tone back for most of the call.
func TestOpusBaresipEchoTone(t *testing.T) {
	g := startGateway(t, gwOptions{})
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeStereoTone(t, tone, 1000, 48000, 4*time.Second)
	// baresip offers opus/48000/2 with stereo=1; sprop-stereo=1 and sends
	// real stereo: the gateway decodes it to mono.
	heard, out := baresipCodecCall(t, "sip:echo@"+g.sipAddr(), "opus.so", "opus", tone, 6)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("baresip output:\n%s", out)
		}
	})
	checkTone(t, heard, 1000, 3*time.Second)
	if !strings.Contains(g.logs.String(), "codec=opus") {
		t.Fatalf("gateway did not answer with opus; baresip said:\n%s", tail(out))
	}
	if s, rate := readWAV(t, heard); rate != 48000 {
		t.Fatalf("baresip heard %d samples at %d Hz, want 48 kHz audio", len(s), rate)
	}
}

// `switchboard dial --codec opus` offers Opus alone, is answered with it, and
// records the echoed tone.
func TestOpusDialRecordsEcho(t *testing.T) {
	g := startGateway(t, gwOptions{})
	dir := t.TempDir()
	in, out := filepath.Join(dir, "x.wav"), filepath.Join(dir, "y.wav")
	writeTone(t, in, 1000, 16000, 3*time.Second) // 16 kHz in: the dialler resamples to 48 kHz
	res, err := runTool(t, 30*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(),
		"--codec", "opus", "--play", in, "--record", out)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	if !strings.Contains(res, "codec=opus") {
		t.Fatalf("dial did not negotiate opus:\n%s", res)
	}
	checkTone(t, out, 1000, 2500*time.Millisecond)
	if _, rate := readWAV(t, out); rate != 48000 {
		t.Fatalf("recording at %d Hz, want 48000", rate)
	}
}
