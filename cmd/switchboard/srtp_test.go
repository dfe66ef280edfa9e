package main

// SRTP (SDES, AES_CM_128_HMAC_SHA1_80) end to end: baresip with its srtp module and
// mediaenc=srtp-mand calls the echo route on a gateway that requires SRTP, hears its
// 1 kHz tone back, and a capture of the call shows only encrypted RTP on the wire.

import (
	"bufio"
	"context"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// capture runs tshark on loopback for UDP to and from the gateway's RTP ports
// until the returned stop is called; stop returns the pcap path.
func capture(t *testing.T, g *gateway) (stop func() string) {
	t.Helper()
	needTool(t, "tshark")
	path := filepath.Join(t.TempDir(), "rtp.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	ports := "udp portrange " + g.configValue("port_min") + "-" + g.configValue("port_max")
	cmd := exec.CommandContext(ctx, "tshark", "-i", "lo", "-f", ports, "-w", path)
	stderr, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "Capturing on") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("tshark did not start capturing")
	}
	stopped := false
	stop = func() string {
		if !stopped {
			stopped = true
			time.Sleep(300 * time.Millisecond) // the last packets reach the capture
			cmd.Process.Signal(syscall.SIGINT)
			cmd.Wait()
			cancel()
		}
		return path
	}
	t.Cleanup(func() { stop() })
	return stop
}

// rtpPayloads reads the UDP payloads to and from port in a capture.
func rtpPayloads(t *testing.T, pcap string, port int) (toGW, fromGW [][]byte) {
	t.Helper()
	out, err := runTool(t, 30*time.Second, t.TempDir(), "tshark", "-r", pcap, "-T", "fields",
		"-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.payload")
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		src, _ := strconv.Atoi(f[0])
		dst, _ := strconv.Atoi(f[1])
		b, err := hex.DecodeString(strings.ReplaceAll(f[2], ":", ""))
		if err != nil {
			continue
		}
		switch port {
		case dst:
			toGW = append(toGW, b)
		case src:
			fromGW = append(fromGW, b)
		}
	}
	return toGW, fromGW
}

// periodic is the share of payload bytes equal to the byte 8 earlier: a 1 kHz tone in
// µ-law at 8 kHz repeats every 8 samples (near 1), ciphertext does not (near 1/256).
func periodic(payload []byte) float64 {
	if len(payload) <= 8 {
		return 0
	}
	same := 0
	for i := 8; i < len(payload); i++ {
		if payload[i] == payload[i-8] {
			same++
		}
	}
	return float64(same) / float64(len(payload)-8)
}

// srtpShaped counts a call's RTP packets that are SRTP (12 bytes of header, 160 of
// PCMU payload, a 10-byte auth tag, the payload not the tone's µ-law) and those that
// are not.
func srtpShaped(pkts [][]byte) (srtp, other int) {
	for _, p := range pkts {
		if len(p) == 12+160+10 && p[0]>>6 == 2 && periodic(p[12:172]) < 0.5 {
			srtp++
		} else {
			other++
		}
	}
	return srtp, other
}

func TestSRTPEchoCall(t *testing.T) {
	g, tlsAddr, ca := tlsGateway(t, "  srtp: required\n")
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 1000, 8000, 4*time.Second)
	for _, tc := range []struct{ name, uri, uriParams, cfg string }{
		{"udp", "sip:echo@" + g.sipAddr(), "", ""},
		{"tls", "sip:echo@" + tlsAddr + ";transport=tls", ";transport=tls", "sip_cafile " + ca + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(g.logs.String())
			stop := capture(t, g)
			heard, out := secureCall(t, tc.uri, tc.uriParams, ";mediaenc=srtp-mand", tc.cfg, tone, 6)
			pcap := stop()
			if !strings.Contains(out, "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)") {
				t.Fatalf("baresip did not run SRTP with AES_CM_128_HMAC_SHA1_80:\n%s", out)
			}
			checkTone(t, heard, 1000, 3*time.Second)

			logs := g.logs.String()[before:]
			if !regexp.MustCompile(`sip invite.*transport=` + tc.name + ` srtp=true`).MatchString(logs) {
				t.Errorf("gateway did not take the INVITE over %s with SRTP", tc.name)
			}
			m := regexp.MustCompile(`msg=answered .*local_rtp=127\.0\.0\.1:(\d+)`).FindStringSubmatch(logs)
			if m == nil {
				t.Fatal("no answered call in the gateway log")
			}
			port, _ := strconv.Atoi(m[1])
			toGW, fromGW := rtpPayloads(t, pcap, port)
			sent, plainOut := srtpShaped(fromGW)
			if sent < 150 || plainOut != 0 {
				t.Errorf("gateway→caller: %d SRTP packets, %d others; want a call's worth, all SRTP", sent, plainOut)
			}
			got, plainIn := srtpShaped(toGW)
			if got < 150 || plainIn > 2 { // baresip may send a packet before its SRTP starts
				t.Errorf("caller→gateway: %d SRTP packets, %d others", got, plainIn)
			}
			// The gateway took the packets that authenticated, nothing else (the
			// capture may miss a packet at either end of the call).
			in := regexp.MustCompile(`call ended.* rtp_in=(\d+) .*malformed=(\d+)`).FindStringSubmatch(logs)
			var rtpIn int
			if in != nil {
				rtpIn, _ = strconv.Atoi(in[1])
			}
			if in == nil || rtpIn < got-2 || rtpIn > got+2 {
				t.Errorf("gateway received %v RTP packets, the capture has %d SRTP ones", in, got)
			}
			t.Logf("wire: %d SRTP packets out, %d in (182 bytes each, payload not the tone's µ-law); %d plain packets from the caller dropped by the gateway",
				sent, got, plainIn)
		})
	}
}

// srtp: required: a caller offering plain RTP/AVP gets 488 and hears nothing.
func TestSRTPRequiredRefusesPlain(t *testing.T) {
	g := startGateway(t, gwOptions{sipExtra: "  srtp: required\n"})
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 1000, 8000, 2*time.Second)
	_, out := runBaresip(t, baresipOpts{uri: "sip:echo@" + g.sipAddr(), codec: "PCMU", wav: tone, seconds: 3})
	if !strings.Contains(out, "488") || strings.Contains(out, "established") {
		t.Fatalf("plain call to an SRTP-only gateway was not refused with 488:\n%s", out)
	}
}
