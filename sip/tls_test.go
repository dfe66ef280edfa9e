package sip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// dialTLSPeer connects a raw SIP peer to the server's TLS listener, verifying its certificate.
func dialTLSPeer(t *testing.T, addr string, roots *x509.CertPool) *peer {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn, parser: sip.NewParser(), buf: make([]byte, 65536)}
}

// overTLS rewrites a message our raw peer built for TCP into its TLS form.
func overTLS(msg string) string {
	return strings.NewReplacer("SIP/2.0/TCP", "SIP/2.0/TLS", "transport=tcp", "transport=tls").Replace(msg)
}

const savpOffer = `v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/SAVP 0
a=rtpmap:0 PCMU/8000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:` + rfcKey + `
`

func tlsServer(t *testing.T, h Handler, srtpTLS string) (*Server, *x509.CertPool) {
	t.Helper()
	cert, key, roots := selfSigned(t)
	s := testServer(t, h, func(c *Config) {
		c.Listen = append(c.Listen, Listen{Transport: "tls", Addr: "127.0.0.1:0", Cert: cert, Key: key, SRTP: srtpTLS})
	})
	return s, roots
}

// A call over TLS: INVITE, 200 with a TLS Contact and our SDES key, ACK, and the
// gateway's BYE back over the caller's own TLS connection.
func TestTLSCall(t *testing.T) {
	got := make(chan *InboundCall, 1)
	s, roots := tlsServer(t, func(c *InboundCall) {
		got <- c
		if err := c.Answer(netip.MustParseAddrPort("127.0.0.1:40002")); err != nil {
			t.Errorf("Answer: %v", err)
			return
		}
		time.Sleep(100 * time.Millisecond)
		_ = c.Hangup("test done")
	}, SRTPRequired)
	addr := s.Addr("tls")
	if addr == "" {
		t.Fatal("no tls listener bound")
	}
	p := dialTLSPeer(t, addr, roots)
	p.send(overTLS(p.invite(addr, "tls-call-1", "tls1", savpOffer)))
	res := p.expectResponse(200, 5*time.Second)

	contact := res.Contact()
	if contact == nil {
		t.Fatal("200 without Contact")
	}
	if tp, _ := contact.Address.UriParams.Get("transport"); tp != "tls" || contact.Address.Port != int(netip.MustParseAddrPort(addr).Port()) {
		t.Errorf("Contact %s: want transport=tls on the TLS port %s", contact.Address.String(), addr)
	}
	body := string(res.Body())
	if !strings.Contains(body, "RTP/SAVP 0") || !strings.Contains(body, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") {
		t.Errorf("answer is not SDES-SRTP:\n%s", body)
	}
	c := <-got
	if c.Transport() != "tls" || c.Media().SRTP == nil {
		t.Errorf("call transport %q, SRTP %+v", c.Transport(), c.Media().SRTP)
	}
	p.send(overTLS(p.ack(addr, "tls-call-1", toTag(res), 1)))

	bye := p.expectRequest(sip.BYE, 5*time.Second) // on this same connection: nothing else is open
	if via := bye.Via(); via == nil || via.Transport != "TLS" {
		t.Errorf("BYE Via %v, want TLS", bye.Via())
	}
	ok := sip.NewResponseFromRequest(bye, 200, "OK", nil)
	p.send(ok.String())
	select {
	case <-c.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("call did not end after BYE/200")
	}
	if by, cause := c.EndCause(); by != "gateway" || cause != "test done" {
		t.Errorf("end cause %s/%s", by, cause)
	}
}

// srtp: required on the TLS listener refuses plain RTP with 488, while the UDP
// listener of the same server (optional) takes it.
func TestSRTPRequiredListener(t *testing.T) {
	s, roots := tlsServer(t, func(c *InboundCall) {
		_ = c.Reject(486, "")
	}, SRTPRequired)
	p := dialTLSPeer(t, s.Addr("tls"), roots)
	p.send(overTLS(p.invite(s.Addr("tls"), "tls-plain-1", "tlsp1", pcmuOffer)))
	res := p.expectResponse(488, 5*time.Second)
	if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "SRTP required") {
		t.Errorf("488 without the SRTP reason: %v", w)
	}

	u := dialPeer(t, "udp", s.Addr("udp"))
	u.send(u.invite(s.Addr("udp"), "udp-plain-1", "udpp1", pcmuOffer))
	u.expectResponse(486, 5*time.Second)
}

func TestTLSListenConfig(t *testing.T) {
	cert, key, _ := selfSigned(t)
	for _, tt := range []struct {
		name string
		l    Listen
		want string
	}{
		{"tls without key", Listen{Transport: "tls", Addr: "127.0.0.1:0", Cert: cert}, "certificate and a key"},
		{"cert on udp", Listen{Transport: "udp", Addr: "127.0.0.1:0", Cert: cert, Key: key}, "only used on tls"},
		{"bad srtp", Listen{Transport: "udp", Addr: "127.0.0.1:0", SRTP: "always"}, "not supported"},
		{"missing file", Listen{Transport: "tls", Addr: "127.0.0.1:0", Cert: cert + ".missing", Key: key}, "tls certificate"},
	} {
		_, err := NewServer(Config{Listen: []Listen{tt.l}, Logger: testLogger(t)}, func(*InboundCall) {})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
}
