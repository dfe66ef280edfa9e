package main

// Real SIP peers driven by the tests: baresip (a softphone) and sipp.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed: run scripts/install-deps.sh (make test does)", name)
	}
}

// writeTone writes a mono 16-bit WAV of a sine tone.
func writeTone(t testing.TB, path string, freq float64, rate int, d time.Duration) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	w, err := pcm.NewWAVWriter(f, rate, 1)
	must(t, err)
	must(t, w.Write(pcm.Tone(freq, rate, int(d.Seconds()*float64(rate)), 0.3)))
	must(t, w.Close())
}

// readWAV reads a WAV file's samples and rate.
func readWAV(t testing.TB, path string) ([]int16, int) {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	s, rate, err := pcm.ReadWAV(f)
	must(t, err)
	return s, rate
}

// rms is the root mean square level of s.
func rms(s []int16) float64 {
	if len(s) == 0 {
		return 0
	}
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(s)))
}

// toneSpan is the part of s that holds audio: from the first to the last 20 ms
// frame whose level is above a floor.
func toneSpan(s []int16, rate int) []int16 {
	n := pcm.FrameSamples(rate)
	first, last := -1, -1
	for i := 0; i+n <= len(s); i += n {
		if rms(s[i:i+n]) > 300 {
			if first < 0 {
				first = i
			}
			last = i + n
		}
	}
	if first < 0 {
		return nil
	}
	return s[first:last]
}

// baresipOpts is one baresip call: what it dials and sends, and how it is set up.
type baresipOpts struct {
	uri        string
	codec      string // audio_codecs of the account, e.g. "PCMU", "opus"
	module     string // codec module; g711.so when empty
	wav        string // what baresip sends
	seconds    int
	uriParams  string   // after the account's host:port, e.g. ";transport=tls"
	acctParams string   // more account parameters, e.g. ";mediaenc=srtp-mand"
	modules    []string // more modules, e.g. "srtp.so"
	config     string   // more config lines
}

// runBaresip places one call from baresip and returns the WAV of what it heard
// (recorded by its sndfile module; "" if none) and its output. freePort can
// lose its port to another process before baresip binds it (baresip exits 98),
// so that is retried on a fresh port.
func runBaresip(t testing.TB, o baresipOpts) (heard, out string) {
	t.Helper()
	needTool(t, "baresip")
	if o.module == "" {
		o.module = "g711.so"
	}
	if _, err := os.Stat("/usr/lib/baresip/modules/" + o.module); err != nil {
		t.Fatalf("baresip's %s module is missing: %v", o.module, err)
	}
	for attempt := 0; ; attempt++ {
		dir := t.TempDir()
		port := freePort(t)
		mods := append([]string{o.module}, o.modules...)
		cfg := fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%d
audio_player alsa,null
audio_source aufile,%s
audio_alert alsa,null
module_path /usr/lib/baresip/modules
module stdio.so
module aufile.so
module alsa.so
module sndfile.so
module %s
module_app account.so
module_app menu.so
snd_path %s
%s`, port, o.wav, strings.Join(mods, "\nmodule "), dir, o.config)
		must(t, os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644))
		acct := fmt.Sprintf("<sip:probe@127.0.0.1:%d%s>;regint=0;audio_codecs=%s%s\n", port, o.uriParams, o.codec, o.acctParams)
		must(t, os.WriteFile(filepath.Join(dir, "accounts"), []byte(acct), 0o644))
		start := time.Now()
		var err error
		out, err = runTool(t, time.Duration(o.seconds+15)*time.Second, dir, "baresip",
			"-4", "-n", "127.0.0.1", "-f", dir, "-e", "/dial "+o.uri, "-t", fmt.Sprint(o.seconds))
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 98 && time.Since(start) < 2*time.Second && attempt < 3 {
			continue // its SIP port was taken meanwhile
		}
		if err != nil {
			t.Logf("baresip: %v", err)
		}
		dumps, _ := filepath.Glob(filepath.Join(dir, "dump-*-dec.wav"))
		if len(dumps) > 0 {
			heard = dumps[0]
		}
		return heard, out
	}
}

// baresipCall dials uri from baresip, sending wavIn in codec, and returns the
// path of the WAV of what baresip heard.
func baresipCall(t testing.TB, uri, codec, wavIn string, seconds int) string {
	t.Helper()
	heard, out := runBaresip(t, baresipOpts{uri: uri, codec: codec, wav: wavIn, seconds: seconds})
	if heard == "" {
		t.Fatalf("baresip recorded nothing; its output:\n%s", out)
	}
	return heard
}

// sippDir makes a working folder for sipp with the pcap folder its built-in
// uac_pcap scenario expects.
func sippDir(t testing.TB) string {
	t.Helper()
	needTool(t, "sipp")
	dir := t.TempDir()
	must(t, os.Symlink("/usr/share/sip-tester", filepath.Join(dir, "pcap")))
	return dir
}
