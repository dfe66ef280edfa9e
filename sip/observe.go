package sip

import "github.com/emiago/sipgo/sip"

// Directions of an observed message (Config.OnMessage).
const (
	dirIn  = "in"
	dirOut = "out"
)

// onWire sees every message the transport parsed (retransmissions too) and
// tells Config.OnMessage: requests in by method, responses in by code.
func (s *Server) onWire(m sip.Message) {
	switch m := m.(type) {
	case *sip.Request:
		s.observe(dirIn, string(m.Method), 0)
	case *sip.Response:
		s.observeResponse(dirIn, m)
	}
}

func (s *Server) observe(dir, method string, code int) {
	if s.cfg.OnMessage != nil {
		s.cfg.OnMessage(dir, method, code)
	}
}

func (s *Server) observeResponse(dir string, res *sip.Response) {
	method := ""
	if cs := res.CSeq(); cs != nil {
		method = string(cs.MethodName)
	}
	s.observe(dir, method, res.StatusCode)
}

// refused tells Config.OnRefused about a request refused before any handler;
// code 0 means it was dropped without a reply.
func (s *Server) refused(reason string, code int) {
	if s.cfg.OnRefused != nil {
		s.cfg.OnRefused(reason, code)
	}
}

// observedTx is a server transaction whose responses are counted as sent.
type observedTx struct {
	sip.ServerTransaction
	s *Server
}

func (t observedTx) Respond(res *sip.Response) error {
	err := t.ServerTransaction.Respond(res)
	if err == nil {
		t.s.observeResponse(dirOut, res)
	}
	return err
}

// Connection keeps the transaction's connection visible (inbound.go answers on it).
func (t observedTx) Connection() sip.Connection {
	if cx, ok := t.ServerTransaction.(interface{ Connection() sip.Connection }); ok {
		return cx.Connection()
	}
	return nil
}
