package sip

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// netnsEnv marks the copy of the test binary running inside its own network namespace.
const netnsEnv = "SWITCHBOARD_TEST_NETNS"

// hostileAddr is a host named in hostile Vias; inside the namespace it is ours, so anything
// sent to it is caught.
const hostileAddr = "192.0.2.7"

// tortureWant is what we answer to each RFC 4475 message (sipgo's testdata/torture), as the
// final status codes in order; nil means ignored. Over TCP a message sipgo cannot frame or
// parse closes the connection unanswered (tcpNone).
var tortureWant = map[string]struct {
	udp     []int
	tcpNone bool  // TCP: ignored (connection closed or waiting for more bytes)
	tcp     []int // TCP answer when it differs from UDP's
	tcpMay  []int // TCP: framing races the answers; any of these (each once, any order) or none
}{
	// 3.1.1 valid messages: processed as usual.
	"valid/dblreq":     {udp: []int{405}, tcpMay: []int{400, 405}}, // REGISTER; over TCP also the INVITE after it, which lacks Contact
	"valid/esc01":      {udp: []int{486}},                          // a call; the test handler refuses it
	"valid/esc02":      {udp: []int{501}},
	"valid/escnull":    {udp: []int{405}},
	"valid/intmeth":    {udp: []int{501}},
	"valid/longreq":    {tcp: []int{486}}, // UDP: sipgo will not send a response over 1300 bytes (RFC 3261 18.1.1)
	"valid/lwsdisp":    {udp: []int{200}},
	"valid/mpart01":    {udp: []int{405}},
	"valid/noreason":   {}, // a response to nothing
	"valid/semiuri":    {udp: []int{200}},
	"valid/transports": {udp: []int{200}},
	"valid/unreason":   {},
	"valid/wsinv":      {udp: []int{400}}, // sipgo does not see "tag = x" (LWS around =): no transaction key
	// 3.1.2 invalid messages: 400 when they can be answered, else ignored.
	"invalid/badaspec":   {udp: []int{400}, tcpNone: true},
	"invalid/badbranch":  {udp: []int{200}},
	"invalid/baddate":    {udp: []int{486}},
	"invalid/baddn":      {udp: []int{400}, tcpNone: true},
	"invalid/badinv01":   {udp: []int{400}, tcpNone: true},
	"invalid/badvers":    {udp: []int{505}},
	"invalid/bcast":      {},
	"invalid/bext01":     {udp: []int{420}},
	"invalid/bigcode":    {},
	"invalid/clerr":      {udp: []int{400}, tcpNone: true}, // TCP waits for the 9999 bytes
	"invalid/cparam01":   {udp: []int{405}},
	"invalid/cparam02":   {udp: []int{405}},
	"invalid/escruri":    {udp: []int{400}},
	"invalid/insuf":      {udp: []int{400}},
	"invalid/inv2543":    {udp: []int{400}, tcpNone: true}, // no Contact; TCP: no Content-Length
	"invalid/invut":      {udp: []int{415}},
	"invalid/ltgtruri":   {udp: []int{400}, tcpNone: true},
	"invalid/lwsruri":    {udp: []int{400}, tcpNone: true},
	"invalid/lwsstart":   {udp: []int{400}, tcpNone: true},
	"invalid/mcl01":      {udp: []int{400}, tcpMay: []int{400}}, // TCP: two lengths may leave no framing
	"invalid/mismatch01": {udp: []int{400}},
	"invalid/mismatch02": {udp: []int{400}},
	"invalid/multi01":    {udp: []int{400}},
	"invalid/ncl":        {udp: []int{400}, tcpNone: true},
	"invalid/novelsc":    {udp: []int{416}, tcpNone: true},
	"invalid/quotbal":    {udp: []int{400}, tcpNone: true},
	"invalid/regaut01":   {udp: []int{405}},
	"invalid/regbadct":   {udp: []int{405}},
	"invalid/regescrt":   {udp: []int{405}},
	"invalid/scalar02":   {udp: []int{400}, tcpNone: true},
	"invalid/scalarlg":   {},
	"invalid/sdp01":      {udp: []int{406}},
	"invalid/test":       {}, // no SIP version, no Via: nothing to answer to (not in RFC 4475)
	"invalid/trws":       {udp: []int{400}, tcpNone: true},
	"invalid/unkscm":     {udp: []int{416}},
	"invalid/unksm2":     {udp: []int{400}},
	"invalid/zeromf":     {udp: []int{200}}, // RFC 4475 3.3.11: an endpoint processes it
}

func tortureDir(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("go env GOMODCACHE: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "github.com/emiago/sipgo@v1.7.2/sip/testdata/torture")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("torture messages not in the module cache: %v", err)
	}
	return dir
}

// TestHostileInNetns re-runs itself under `unshare -n` so that hostile messages, and any
// answer they provoke, cannot leave a namespace that has only loopback.
func TestHostileInNetns(t *testing.T) {
	if os.Getenv(netnsEnv) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root for unshare -n")
		}
		for _, tool := range []string{"unshare", "ip", "sipp"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed", tool)
			}
		}
		dir := tortureDir(t) // resolved here: the namespace has no module proxy
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "-n", "--", os.Args[0],
			"-test.run", "^TestHostileInNetns$", "-test.v", "-test.count=1", "-test.timeout=170s")
		cmd.Env = append(os.Environ(), netnsEnv+"=1", "SWITCHBOARD_TORTURE_DIR="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil || testing.Verbose() {
			t.Logf("in the namespace:\n%s", out)
		}
		if err != nil {
			t.Fatalf("netns run: %v", err)
		}
		return
	}

	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", hostileAddr[:len(hostileAddr)-1] + "1/24", "dev", "lo"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	if out, _ := exec.Command("ip", "-o", "link").Output(); strings.Count(string(out), "\n") != 1 {
		t.Fatalf("namespace has more than loopback:\n%s", out)
	}
	trap := newTrap(t, 5060, 5050)

	r := newRecord()
	s := testServer(t, r.handler(func(c *InboundCall) {
		if c.To() != "switchboard-call" {
			_ = c.Reject(486, "Busy Here")
			return
		}
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
			return
		}
		<-c.Context().Done()
	}), func(cfg *Config) {
		// Most torture Vias carry no port: a server not on 5060 shows it answers the source.
		cfg.Listen = []Listen{{Transport: "udp", Addr: "127.0.0.1:5090"}, {Transport: "tcp", Addr: "127.0.0.1:5090"}}
	})

	dir := os.Getenv("SWITCHBOARD_TORTURE_DIR")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.dat"))
	if len(files) != 50 {
		t.Fatalf("%d torture files in %s, want 49 of RFC 4475 and sipgo's test.dat", len(files), dir)
	}
	got := map[string]map[string][]int{"udp": {}, "tcp": {}}
	var mu sync.Mutex
	for _, network := range []string{"udp", "tcp"} {
		t.Run("torture/"+network, func(t *testing.T) {
			for i, f := range files {
				name := filepath.Base(filepath.Dir(f)) + "/" + strings.TrimSuffix(filepath.Base(f), ".dat")
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					want, ok := tortureWant[name]
					if !ok {
						t.Fatalf("no expectation for %s", name)
					}
					exp := want.udp
					if network == "tcp" {
						if want.tcpNone {
							exp = nil
						} else if want.tcp != nil {
							exp = want.tcp
						}
					}
					msg, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					if name != "invalid/badbranch" {
						// Several messages share a branch and sent-by, which makes them one
						// transaction (RFC 3261 17.2.3): keep each its own.
						msg = uniqueBranch(msg, network+strconv.Itoa(i))
					}
					codes := exchange(t, network, s.Addr(network), msg, len(exp))
					mu.Lock()
					got[network][name] = codes
					mu.Unlock()
					if network == "tcp" && want.tcpMay != nil {
						// Answered from what could be framed before the connection closed.
						exp = slices.DeleteFunc(slices.Clone(want.tcpMay), func(c int) bool { return !slices.Contains(codes, c) })
						codes = slices.Sorted(slices.Values(codes))
					}
					if !slices.Equal(codes, exp) {
						t.Errorf("%s over %s: answered %v, want %v", name, network, codes, exp)
					}
				})
			}
		})
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range tortureWant {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		t.Logf("torture: %-20s udp %-10v tcp %v", n, got["udp"][n], got["tcp"][n])
	}

	t.Run("via-names-another-host", func(t *testing.T) {
		for _, network := range []string{"udp", "tcp"} {
			for _, method := range []string{"OPTIONS", "INVITE"} {
				via := fmt.Sprintf("SIP/2.0/%s %s:5060;branch=z9hG4bK-%s-%s", strings.ToUpper(network), hostileAddr, network, method)
				msg := hostileRequest(method, via, s.Addr(network))
				want := 200
				if method == "INVITE" {
					want = 486
				}
				if codes := exchange(t, network, s.Addr(network), []byte(msg), 1); !slices.Equal(codes, []int{want}) {
					t.Errorf("%s over %s from the source, Via %s: answered %v, want [%d] at the source", method, network, hostileAddr, codes, want)
				}
				// A connection gone before the answer: sipgo would dial the Via host.
				if network == "tcp" {
					c, err := net.Dial("tcp", s.Addr("tcp"))
					if err != nil {
						t.Fatal(err)
					}
					_, _ = c.Write([]byte(strings.Replace(msg, "z9hG4bK-", "z9hG4bK-gone-", 1)))
					c.Close()
				}
			}
		}
		// Hostnames in Vias are never resolved: the answer goes to the source all the same.
		msg := hostileRequest("OPTIONS", "SIP/2.0/UDP reflect.example.net;branch=z9hG4bK-name", s.Addr("udp"))
		if codes := exchange(t, "udp", s.Addr("udp"), []byte(msg), 1); !slices.Equal(codes, []int{200}) {
			t.Errorf("OPTIONS with a hostname Via: answered %v, want [200]", codes)
		}
	})

	t.Run("normal-call-after", func(t *testing.T) {
		for _, args := range [][]string{{"-sn", "uac"}, {"-sn", "uac", "-t", "t1"}} {
			args = append(args, "-s", "switchboard-call", "-d", "200")
			if out, err := sipp(t, s.Addr("udp"), args...); err != nil {
				t.Fatalf("sipp %v after the torture: %v\n%s", args, err, tail(out, 3000))
			}
		}
	})

	time.Sleep(1500 * time.Millisecond) // retransmissions of unacknowledged final responses
	if got := trap.caught(); len(got) > 0 {
		t.Errorf("traffic reached hosts named in Vias (a reflector): %q", got)
	}
}

// uniqueBranch appends a suffix to the first branch parameter of msg.
func uniqueBranch(msg []byte, suffix string) []byte {
	i := bytes.Index(bytes.ToLower(msg), []byte("branch="))
	if i < 0 {
		return msg
	}
	j := i + len("branch=")
	for j < len(msg) && bytes.IndexByte([]byte(";, \t\r\n"), msg[j]) < 0 {
		j++
	}
	return slices.Concat(msg[:j], []byte("."+suffix), msg[j:])
}

func hostileRequest(method, via, target string) string {
	callID := fmt.Sprintf("hostile-%d", time.Now().UnixNano())
	body := ""
	extra := ""
	if method == "INVITE" {
		body = "v=0\r\no=- 1 1 IN IP4 " + hostileAddr + "\r\ns=-\r\nc=IN IP4 " + hostileAddr + "\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
		extra = "Contact: <sip:caller@" + hostileAddr + ":5060>\r\nContent-Type: application/sdp\r\n"
	}
	return method + " sip:victim@" + target + " SIP/2.0\r\n" +
		"Via: " + via + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:caller@" + hostileAddr + ">;tag=h1\r\n" +
		"To: <sip:victim@" + target + ">\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 " + method + "\r\n" + extra +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
}

// exchange sends msg from a fresh socket and collects the final status codes that come
// back to that socket: until want of them arrived (plus a moment for extras), or a quiet
// spell when none are wanted.
func exchange(t *testing.T, network, addr string, msg []byte, want int) []int {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var codes []int
	collect := func(m sip.Message) {
		if res, ok := m.(*sip.Response); ok && res.StatusCode >= 200 {
			codes = append(codes, res.StatusCode)
		}
	}
	stream := sip.NewParser().NewSIPStream()
	deadline := time.Now().Add(2 * time.Second)
	if want == 0 {
		deadline = time.Now().Add(500 * time.Millisecond)
	}
	buf := make([]byte, 65536)
	seen := map[string]bool{}
	for time.Now().Before(deadline) {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			break // timeout, or the server closed the connection
		}
		if network == "udp" {
			if seen[string(buf[:n])] {
				continue // a retransmission
			}
			seen[string(buf[:n])] = true
			if m, err := sip.ParseMessage(bytes.Clone(buf[:n])); err == nil {
				collect(m)
			} else if code := statusOf(buf[:n]); code >= 200 {
				codes = append(codes, code) // our 400 repeats the malformed headers it answers
			}
		} else if err := stream.ParseSIPStream(buf[:n], collect); err != nil && err != sip.ErrParseSipPartial {
			t.Errorf("unparsable answer: %v", err)
		}
		if want > 0 && len(codes) >= want {
			deadline = time.Now().Add(150 * time.Millisecond)
		}
	}
	return codes
}

// statusOf reads the code of a status line: "SIP/2.0 400 ...".
func statusOf(b []byte) int {
	f := strings.Fields(firstLine(string(b)))
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0
	}
	code, _ := strconv.Atoi(f[1])
	return code
}

// trap listens on the SIP ports of every address in the namespace and records what arrives.
type trap struct {
	mu  sync.Mutex
	got []string
}

func newTrap(t *testing.T, ports ...int) *trap {
	tr := &trap{}
	for _, p := range ports {
		u, err := net.ListenPacket("udp", fmt.Sprintf("0.0.0.0:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close(); l.Close() })
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := u.ReadFrom(buf)
				if err != nil {
					return
				}
				tr.add(fmt.Sprintf("udp %s→:%d %q", from, p, firstLine(string(buf[:n]))))
			}
		}()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				tr.add(fmt.Sprintf("tcp connection %s→%s", c.RemoteAddr(), c.LocalAddr()))
				c.Close()
			}
		}()
	}
	return tr
}

func (tr *trap) add(s string) {
	tr.mu.Lock()
	tr.got = append(tr.got, s)
	tr.mu.Unlock()
}

func (tr *trap) caught() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.got)
}
