package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// twilioBot is a Twilio Media Streams bot that sends every media payload
// straight back (as cmd/switchboard/agents_test.go's twilioEcho), kept lean
// because it shares the machine with the gateway: a media message is echoed
// from reused buffers, its base64 payload copied as it came.
type twilioBot struct {
	botCounters
	srv *http.Server
	url string
}

// botCounters are what either bot (this one, or polledBot) counts.
type botCounters struct {
	conns atomic.Int64
	media atomic.Int64
	marks atomic.Int64 // mark events from the gateway (the bot sends no marks, so none in a sound run)
}

func (c *botCounters) counters() *botCounters { return c }

// echoBot is the bot the twilio route points at.
type echoBot interface {
	address() string
	counters() *botCounters
	close()
}

func (b *twilioBot) address() string { return b.url }

type twilioMsg struct {
	Event     string `json:"event"`
	StreamSid string `json:"streamSid"`
	Start     *struct {
		StreamSid string `json:"streamSid"`
	} `json:"start"`
	Media *struct {
		Payload string `json:"payload"`
	} `json:"media"`
}

func startBot() (*twilioBot, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &twilioBot{url: "ws://" + ln.Addr().String() + "/media"}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	return b, nil
}

func (b *twilioBot) serve(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	b.conns.Add(1)
	// Bounded: no call of a load run lasts 40 minutes.
	ctx, cancel := context.WithTimeout(r.Context(), 40*time.Minute)
	defer cancel()
	var s botStream
	in := make([]byte, 0, 1024)
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		if in, err = readMessage(rd, in[:0]); err != nil {
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		reply, stop := s.handle(in)
		switch {
		case stop:
			return
		case s.mark:
			b.marks.Add(1)
		case reply != nil:
			b.media.Add(1)
			if c.Write(ctx, websocket.MessageText, reply) != nil {
				return
			}
		}
	}
}

func (b *twilioBot) close() { b.srv.Close() }

// readMessage appends the rest of a WebSocket message to buf, growing it only
// for a message longer than any before.
func readMessage(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// botStream is one Media Streams connection as the bot sees it.
type botStream struct {
	sid  string
	out  []byte // the reply, reused
	mark bool   // the last message was a mark
}

var (
	mediaPrefix = []byte(`{"event":"media",`) // how the gateway starts a media message
	payloadKey  = []byte(`"payload":"`)
)

// handle acts on one message: the echo of a media message (valid until the
// next call), or stop at the stream's end. A media message as the gateway
// writes it is echoed without decoding; anything else goes through encoding/json.
func (s *botStream) handle(msg []byte) (reply []byte, stop bool) {
	s.mark = false
	if bytes.HasPrefix(msg, mediaPrefix) {
		if i := bytes.Index(msg, payloadKey); i >= 0 {
			p := msg[i+len(payloadKey):]
			if j := bytes.IndexByte(p, '"'); j >= 0 && bytes.IndexByte(p[:j], '\\') < 0 {
				return s.echo(p[:j]), false
			}
		}
	}
	var m twilioMsg
	if json.Unmarshal(msg, &m) != nil {
		return nil, false
	}
	switch m.Event {
	case "start":
		s.sid = m.StreamSid
		if s.sid == "" && m.Start != nil {
			s.sid = m.Start.StreamSid
		}
	case "stop":
		return nil, true
	case "mark":
		s.mark = true
	case "media":
		if m.Media != nil {
			return s.echo([]byte(m.Media.Payload)), false
		}
	}
	return nil, false // connected, dtmf
}

// echo is a media message to the gateway carrying payload, base64 as received.
func (s *botStream) echo(payload []byte) []byte {
	if s.sid == "" {
		return nil // media before start: not a stream yet
	}
	// streamSid and base64 need no JSON escaping.
	s.out = append(s.out[:0], `{"event":"media","streamSid":"`...)
	s.out = append(s.out, s.sid...)
	s.out = append(s.out, `","media":{"payload":"`...)
	s.out = append(s.out, payload...)
	s.out = append(s.out, `"}}`...)
	return s.out
}
