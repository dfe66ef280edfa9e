package media

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The worst time to open one media socket while a fresh process opens its
// first 2,048 (a gateway ramping to 1,000 calls), with and without the pool
// growing the descriptor table first (reserveFDs). Each run is a new process,
// since a table never shrinks:
//
//	go test -run XXX -bench BenchmarkFirstSockets ./media/
func BenchmarkFirstSockets(b *testing.B) {
	for _, reserve := range []bool{false, true} {
		b.Run(fmt.Sprintf("reserve=%v", reserve), func(b *testing.B) {
			var worst time.Duration
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^TestFirstSocketsChild$")
				cmd.Env = append(os.Environ(), "MEDIA_FIRST_SOCKETS="+strconv.FormatBool(reserve))
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				_, after, ok := strings.Cut(string(out), "worst=")
				if !ok {
					b.Fatalf("child printed no worst: %s", out)
				}
				d, err := time.ParseDuration(strings.Fields(after)[0])
				if err != nil {
					b.Fatal(err)
				}
				worst = max(worst, d)
			}
			b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
		})
	}
}

// TestFirstSocketsChild is BenchmarkFirstSockets' child process; a plain test run skips it.
func TestFirstSocketsChild(t *testing.T) {
	mode := os.Getenv("MEDIA_FIRST_SOCKETS")
	if mode == "" {
		t.Skip("the child of BenchmarkFirstSockets")
	}
	if mode == "true" {
		reserveFDs(4096)
	}
	var worst time.Duration
	socks := make([]*udpSocket, 0, 2048)
	defer func() {
		for _, u := range socks {
			u.Close()
		}
	}()
	for range cap(socks) {
		start := time.Now()
		u, err := listenUDP(netip.MustParseAddr("127.0.0.1"), 0)
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
		socks = append(socks, u)
	}
	fmt.Printf("worst=%v\n", worst)
}
