package main

// SIP over TLS end to end: baresip (sipp here is built without TLS) calls the echo
// route over a TLS connection to a listener with a self-signed certificate.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// selfSignedCert writes cert.pem and key.pem for 127.0.0.1 into dir.
func selfSignedCert(t testing.TB, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	must(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	must(t, err)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	must(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(t, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	return cert, key
}

// tlsGateway starts a gateway with a TLS listener besides UDP and TCP; sipExtra adds
// sip keys (e.g. srtp). It returns the gateway, the TLS address and the CA file.
func tlsGateway(t *testing.T, sipExtra string) (*gateway, string, string) {
	t.Helper()
	cert, key := selfSignedCert(t, t.TempDir())
	tlsPort := freePort(t)
	g := startGateway(t, gwOptions{sipExtra: fmt.Sprintf("    - { transport: tls, addr: 127.0.0.1:%d, cert: %s, key: %s }\n%s",
		tlsPort, cert, key, sipExtra)})
	return g, fmt.Sprintf("127.0.0.1:%d", tlsPort), cert
}

// secureCall is one baresip call with extra config lines and account parameters
// (TLS transport, the srtp module); it returns the WAV baresip heard and its output.
func secureCall(t *testing.T, uri, uriParams, acctParams, extraCfg, wavIn string, seconds int) (string, string) {
	t.Helper()
	heard, out := runBaresip(t, baresipOpts{uri: uri, codec: "PCMU", wav: wavIn, seconds: seconds,
		uriParams: uriParams, acctParams: acctParams, modules: []string{"srtp.so"}, config: extraCfg})
	if heard == "" {
		t.Fatalf("baresip recorded nothing; its output:\n%s", out)
	}
	return heard, out
}

// A call over SIP/TLS to a self-signed listener: answered, the tone echoed, and the
// whole dialog (INVITE, 200, ACK, BYE) on the one TLS connection baresip opened.
func TestTLSEchoCall(t *testing.T) {
	g, tlsAddr, ca := tlsGateway(t, "")
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 1000, 8000, 4*time.Second)
	heard, out := secureCall(t, "sip:echo@"+tlsAddr+";transport=tls", ";transport=tls", "",
		"sip_cafile "+ca+"\n", tone, 6)
	if !strings.Contains(out, "established") {
		t.Fatalf("call not established over TLS; baresip said:\n%s", out)
	}
	checkTone(t, heard, 1000, 3*time.Second)

	logs := g.logs.String()
	if !strings.Contains(logs, "sip listening") || !strings.Contains(logs, "tls="+tlsAddr) {
		t.Errorf("gateway did not report its TLS listener")
	}
	// baresip's BYE came back over its TLS connection and matched the dialog.
	if !regexp.MustCompile(`sip dialog ended.*by=caller cause=bye`).MatchString(logs) {
		t.Errorf("no BYE from the caller ended the dialog")
	}
	if !regexp.MustCompile(`sip invite.*transport=tls`).MatchString(logs) {
		t.Errorf("the INVITE did not arrive over TLS")
	}
	if n := answeredCalls(g); n != 1 {
		t.Errorf("answered calls in /metrics: %v, want 1", n)
	}
}

// answeredCalls sums switchboard_calls_total{result="answered"} over its other labels.
func answeredCalls(g *gateway) float64 {
	var n float64
	for k, v := range g.metrics() {
		if strings.HasPrefix(k, "switchboard_calls_total{") && strings.Contains(k, `result="answered"`) {
			n += v
		}
	}
	return n
}
