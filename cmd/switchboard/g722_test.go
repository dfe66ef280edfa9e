package main

// G.722 wideband, end to end, against baresip's g722 module (spandsp's codec).

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A softphone offering only G.722 calls the echo route and hears its 1 kHz
// tone, and a 6 kHz one that only a wideband codec carries, for most of the call.
func TestG722BaresipEchoTone(t *testing.T) {
	g := startGateway(t, gwOptions{sipExtra: "  codecs: [G722, PCMU]\n"})
	for _, freq := range []float64{1000, 6000} {
		t.Run(fmt.Sprint(freq), func(t *testing.T) {
			tone := filepath.Join(t.TempDir(), "tone.wav")
			writeTone(t, tone, freq, 16000, 4*time.Second)
			heard, out := baresipCodecCall(t, "sip:echo@"+g.sipAddr(), "g722.so", "G722", tone, 6)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("baresip output:\n%s", out)
				}
			})
			checkTone(t, heard, freq, 3*time.Second)
			if _, rate := readWAV(t, heard); rate != 16000 {
				t.Fatalf("baresip heard %d Hz audio, want 16000", rate)
			}
		})
	}
	if !strings.Contains(g.logs.String(), "codec=G722") {
		t.Fatal("gateway did not answer with G722")
	}
}

// `switchboard dial --codec G722` records the echoed tone at 16 kHz.
func TestG722DialRecordsEcho(t *testing.T) {
	g := startGateway(t, gwOptions{sipExtra: "  codecs: [G722]\n"})
	dir := t.TempDir()
	in, out := filepath.Join(dir, "x.wav"), filepath.Join(dir, "y.wav")
	writeTone(t, in, 1000, 16000, 3*time.Second)
	res, err := runTool(t, 30*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(),
		"--codec", "G722", "--play", in, "--record", out)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	if !strings.Contains(res, "codec=G722") {
		t.Fatalf("dial did not negotiate G722:\n%s", res)
	}
	checkTone(t, out, 1000, 2500*time.Millisecond)
	if _, rate := readWAV(t, out); rate != 16000 {
		t.Fatalf("recording at %d Hz, want 16000", rate)
	}
}
