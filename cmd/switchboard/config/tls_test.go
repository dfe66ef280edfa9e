package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeCert(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sip.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "tls"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "tls", "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(os.WriteFile(filepath.Join(dir, "tls", "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
}

func TestTLSListen(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	c, err := Parse("sb.yaml", []byte(`sip:
  srtp: required
  listen:
    - {transport: udp, addr: 127.0.0.1:5060, srtp: "off"}
    - transport: tls
      addr: 127.0.0.1:5061
      cert: tls/cert.pem
      key: tls/key.pem
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	l := c.SIP.Listen[1]
	if l.Transport != "tls" || l.Cert != filepath.Join(dir, "tls/cert.pem") || l.Key != filepath.Join(dir, "tls/key.pem") || l.SRTP != "" {
		t.Errorf("tls listener %+v", l)
	}
	if c.SIP.SRTP != "required" || c.SIP.Listen[0].SRTP != "off" {
		t.Errorf("srtp: global %q, udp %q", c.SIP.SRTP, c.SIP.Listen[0].SRTP)
	}
}

func TestTLSListenErrors(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	tests := []struct{ yaml, want string }{
		{"sip:\n  listen:\n    - {transport: tls, addr: 127.0.0.1:5061}\n", "sb.yaml:3:7: sip.listen: a tls listener needs cert and key"},
		{"sip:\n  listen:\n    - {transport: tls, addr: 127.0.0.1:5061, cert: tls/key.pem, key: tls/key.pem}\n", "sb.yaml:3:52: sip.listen.cert:"},
		{"sip:\n  listen:\n    - {transport: tls, addr: 127.0.0.1:5061, cert: nope.pem, key: tls/key.pem}\n", "sb.yaml:3:52: sip.listen.cert: open"},
		{"sip:\n  listen:\n    - {transport: udp, addr: 127.0.0.1:5060, cert: tls/cert.pem}\n", "sb.yaml:3:52: sip.listen.cert: only a tls listener"},
		{"sip:\n  listen:\n    - {transport: udp, addr: 127.0.0.1:5060, srtp: always}\n", `sb.yaml:3:52: sip.listen.srtp: "always" is not allowed; allowed: off, optional, required`},
		{"sip:\n  srtp: yes\n", `sb.yaml:2:9: sip.srtp: "yes" is not allowed`},
	}
	for _, tt := range tests {
		_, err := Parse("sb.yaml", []byte(tt.yaml), dir)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q:\n got %v\nwant %s", tt.yaml, err, tt.want)
		}
	}
}
