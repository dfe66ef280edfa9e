package sip

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/emiago/sipgo/sip"
)

// SIP over TLS (RFC 3261 §26.2, port 5061): listeners with a configured certificate.
// Requests inside a TLS dialog go back over the caller's own connection (dialog.route),
// as for TCP; the server never opens TLS connections of its own.

// secure holds the TLS listeners.
type secure struct {
	tls []net.Listener
}

// checkListenSecurity validates a listener's TLS files and settles its SRTP mode.
func checkListenSecurity(l *Listen, global string) error {
	g, err := srtpMode(global)
	if err != nil {
		return err
	}
	if l.SRTP == "" {
		l.SRTP = g
	} else if l.SRTP, err = srtpMode(l.SRTP); err != nil {
		return err
	}
	switch {
	case l.Transport == "tls" && (l.Cert == "" || l.Key == ""):
		return errors.New("tls needs a certificate and a key file")
	case l.Transport != "tls" && (l.Cert != "" || l.Key != ""):
		return fmt.Errorf("a certificate is only used on tls, not %s", l.Transport)
	}
	return nil
}

// listenTLS binds one TLS listener with the listener's certificate.
func (s *Server) listenTLS(l Listen) error {
	cert, err := tls.LoadX509KeyPair(l.Cert, l.Key)
	if err != nil {
		return fmt.Errorf("sip: tls certificate: %w", err)
	}
	ln, err := tls.Listen("tcp", l.Addr, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return fmt.Errorf("sip: listen tls %s: %w", l.Addr, err)
	}
	s.sec.tls = append(s.sec.tls, ln)
	if _, ok := s.addrs["tls"]; !ok {
		s.addrs["tls"] = ln.Addr().String()
	}
	return nil
}

// noDialTLS is the TLS transport's counterpart of noDialTCP (guard.go).
func noDialTLS() *sip.TransportTLS {
	return &sip.TransportTLS{TransportTCP: noDialTCP()}
}

// listenerFor is the configured listener a request arrived on, by transport and the
// connection's local address; ok false when none matches (then the server-wide mode).
func (s *Server) listenerFor(transport string, local net.Addr) (Listen, bool) {
	la := addrPortOf(local)
	idx := map[string]int{}
	for _, l := range s.cfg.Listen {
		i := idx[l.Transport]
		idx[l.Transport]++
		var bound net.Addr
		switch {
		case l.Transport == "udp" && i < len(s.udp):
			bound = s.udp[i].LocalAddr()
		case l.Transport == "tcp" && i < len(s.tcp):
			bound = s.tcp[i].Addr()
		case l.Transport == "tls" && i < len(s.sec.tls):
			bound = s.sec.tls[i].Addr()
		}
		if l.Transport != transport || bound == nil {
			continue
		}
		b := addrPortOf(bound)
		if b.Port() == la.Port() && (b.Addr().IsUnspecified() || b.Addr().Unmap() == la.Addr().Unmap()) {
			return l, true
		}
	}
	return Listen{}, false
}

// srtpModeFor is the SRTP mode of the listener an INVITE came in on.
func (s *Server) srtpModeFor(req *sip.Request, tx sip.ServerTransaction) string {
	if cx, ok := tx.(interface{ Connection() sip.Connection }); ok {
		if conn := cx.Connection(); conn != nil {
			if l, ok := s.listenerFor(lowerTransport(req.Transport()), conn.LocalAddr()); ok {
				return l.SRTP
			}
		}
	}
	m, _ := srtpMode(s.cfg.SRTP)
	return m
}
