package main

// Outbound trunks with the real binary: POST /v1/calls through a sipp carrier that
// challenges with 407, answered and bridged to echo; the toll-fraud guard and caps;
// REGISTER refreshed at a sipp registrar; OPTIONS pings marking trunks up and down.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

func postCall(t *testing.T, g *gateway, token, body string) (int, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+g.httpAddr+"/v1/calls", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]string
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// sippCarrier runs a sipp scenario from sip/testdata as a UAS on port; its error comes on the channel.
func sippCarrier(t *testing.T, scenario string, port int, args ...string) <-chan error {
	t.Helper()
	dir := sippDir(t)
	scen, err := filepath.Abs("../../sip/testdata/" + scenario)
	must(t, err)
	done := make(chan error, 1)
	go func() {
		out, err := runTool(t, 40*time.Second, dir, "sipp", append([]string{"-sf", scen, "-i", "127.0.0.1",
			"-p", fmt.Sprint(port), "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error"}, args...)...)
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, tail(out))
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // sipp binds its port
	return done
}

func TestOutboundCall407BridgedToEcho(t *testing.T) {
	needTool(t, "sipp")
	rtp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	defer rtp.Close()
	carrierPort := freePort(t)
	carrier := sippCarrier(t, "uas_407.xml", carrierPort, "-key", "rtp_port", fmt.Sprint(rtp.LocalAddr().(*net.UDPAddr).Port))

	t.Setenv("SB_TEST_API_TOKEN", "api-token")
	t.Setenv("SB_TEST_OUT_PASSWORD", "outsecret")
	g := startGateway(t, gwOptions{extra: fmt.Sprintf(`api: { token_env: SB_TEST_API_TOKEN }
trunks:
  - name: carrier
    outbound:
      host: 127.0.0.1
      port: %d
      auth: { user: out, password_env: SB_TEST_OUT_PASSWORD }
      caller_id: "+15550100"
      max_calls: 1
      allowed_destinations: ["+1555*"]
`, carrierPort)})

	if code, _ := postCall(t, g, "wrong", `{"to":"+15550199","trunk":"carrier","target":"echo"}`); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, body := postCall(t, g, "api-token", `{"to":"+900555","trunk":"carrier","target":"echo"}`); code != 403 {
		t.Errorf("premium-rate destination: %d %v, want 403", code, body)
	}
	code, body := postCall(t, g, "api-token", `{"to":"+15550199","from":"+15550142","trunk":"carrier","target":"echo"}`)
	if code != 201 || body["id"] == "" {
		t.Fatalf("POST /v1/calls: %d %v, want 201 with an id", code, body)
	}
	id := body["id"]
	// max_calls: 1, so a second call while the first is up is refused.
	if code, _ := postCall(t, g, "api-token", `{"to":"+15550198","trunk":"carrier","target":"echo"}`); code != 503 {
		t.Errorf("second call over max_calls: %d, want 503", code)
	}

	// Play the carrier's side: 1 kHz µ-law toward the gateway, and read what comes back.
	heard := exchangeTone(t, rtp, 1000, 2*time.Second)
	f := pcm.DominantFrequency(heard, 8000)
	t.Logf("carrier heard %d ms of audio back, dominant %.0f Hz, rms %.0f", len(heard)/8, f, rms(heard))
	if math.Abs(f-1000) > 30 || rms(heard) < 1000 {
		t.Errorf("echo through the outbound call: dominant %.0f Hz rms %.0f, want the 1 kHz tone", f, rms(heard))
	}

	// The admin API hangs it up; sipp's scenario ends on our BYE.
	req, _ := http.NewRequest("DELETE", "http://"+g.httpAddr+"/v1/calls/"+id, nil)
	req.Header.Set("Authorization", "Bearer api-token")
	res, err := http.DefaultClient.Do(req)
	must(t, err)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Errorf("DELETE /v1/calls/%s: %d", id, res.StatusCode)
	}
	select {
	case err := <-carrier:
		if err != nil {
			t.Fatalf("sipp carrier: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sipp carrier did not finish")
	}
	waitFor(t, 5*time.Second, "the call to end", func() bool {
		return metricSum(g.metrics(), "switchboard_calls_active") == 0
	})
	if n := metricSum(g.metrics(), "switchboard_calls_total", `result="answered"`, `trunk="carrier"`); n != 1 {
		t.Errorf("answered outbound calls on carrier = %v, want 1", n)
	}
	if !strings.Contains(g.logs.String(), "early media") {
		t.Error("no early media logged for the 183")
	}
}

// exchangeTone waits for the gateway's RTP, then sends a tone to where it came from for d
// and returns the decoded audio received during the second half.
func exchangeTone(t *testing.T, conn *net.UDPConn, freq float64, d time.Duration) []int16 {
	t.Helper()
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, gw, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no RTP from the gateway: %v", err)
	}
	tone := pcm.Tone(freq, 8000, int(d/time.Millisecond)*8, 8000)
	stop := make(chan struct{})
	go func() {
		pkt := make([]byte, 12+160)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; (i+1)*160 <= len(tone); i++ {
			pkt[0], pkt[1] = 0x80, 0
			binary.BigEndian.PutUint16(pkt[2:], uint16(i))
			binary.BigEndian.PutUint32(pkt[4:], uint32(i*160))
			binary.BigEndian.PutUint32(pkt[8:], 0x5eed)
			for j, s := range tone[i*160 : (i+1)*160] {
				pkt[12+j] = g711.EncodeUlawFrame(s)
			}
			conn.WriteToUDP(pkt, gw)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer close(stop)
	var heard []int16
	begin := time.Now()
	for time.Since(begin) < d {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if n <= 12 || buf[1]&0x7f != 0 || time.Since(begin) < d/2 {
			continue
		}
		for _, b := range buf[12:n] {
			heard = append(heard, g711.DecodeUlawFrame(b))
		}
	}
	return heard
}

// optionsResponder answers every SIP request on a UDP socket with 200 OK.
func optionsResponder(t *testing.T) int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { pc.Close() })
	go func() {
		p := sip.NewParser()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := p.ParseSIP(bytes.Clone(buf[:n]))
			if req, ok := m.(*sip.Request); ok && err == nil {
				pc.WriteTo([]byte(sip.NewResponseFromRequest(req, 200, "OK", nil).String()), from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func TestRegisterAndOptionsPingE2E(t *testing.T) {
	needTool(t, "sipp")
	regPort := freePort(t)
	registrar := sippCarrier(t, "register_uas.xml", regPort)
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer silent.Close()
	alive := optionsResponder(t)

	t.Setenv("SB_TEST_REG_PASSWORD", "regsecret")
	g := startGateway(t, gwOptions{extra: fmt.Sprintf(`trunks:
  - name: registrar
    outbound:
      uri: sip:127.0.0.1:%d
      auth: { user: reg, password_env: SB_TEST_REG_PASSWORD }
      register: { expires: 2s }
      allowed_destinations: ["1*"]
  - name: alive
    outbound: { host: 127.0.0.1, port: %d, options_ping: 300ms, allowed_destinations: ["1*"] }
  - name: dead
    outbound: { host: 127.0.0.1, port: %d, options_ping: 300ms, allowed_destinations: ["1*"] }
`, regPort, alive, silent.LocalAddr().(*net.UDPAddr).Port)})

	// The registrar scenario wants the refresh REGISTER within the 2 s it granted.
	select {
	case err := <-registrar:
		if err != nil {
			t.Fatalf("sipp registrar: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sipp registrar did not finish")
	}
	if n := strings.Count(g.logs.String(), "trunk registered"); n < 2 {
		t.Errorf("%d registrations logged, want the first and its refresh", n)
	}
	waitFor(t, 5*time.Second, "trunk_up for alive and dead", func() bool {
		m := g.metrics()
		_, a := m[`switchboard_trunk_up{trunk="alive"}`]
		_, d := m[`switchboard_trunk_up{trunk="dead"}`]
		return a && d
	})
	m := g.metrics()
	if m[`switchboard_trunk_up{trunk="alive"}`] != 1 || m[`switchboard_trunk_up{trunk="dead"}`] != 0 {
		t.Errorf("trunk_up alive=%v dead=%v, want 1 and 0", m[`switchboard_trunk_up{trunk="alive"}`], m[`switchboard_trunk_up{trunk="dead"}`])
	}
	logs := g.logs.String()
	if !strings.Contains(logs, "trunk up") || !strings.Contains(logs, "trunk down") {
		t.Error("trunk up/down not logged")
	}
}
