package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// twilioBot is a Twilio Media Streams bot that sends every media payload
// straight back (as cmd/switchboard/agents_test.go's twilioEcho), kept lean
// because it shares the machine with the gateway.
type twilioBot struct {
	srv   *http.Server
	url   string
	conns atomic.Int64
	media atomic.Int64
}

type twilioMsg struct {
	Event     string `json:"event"`
	StreamSid string `json:"streamSid"`
	Media     *struct {
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
	var sid string
	out := make([]byte, 0, 512)
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		var m twilioMsg
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		switch m.Event {
		case "start":
			sid = m.StreamSid
		case "stop":
			return
		case "media":
			if m.Media == nil || sid == "" {
				continue
			}
			b.media.Add(1)
			// streamSid and payload (base64) need no JSON escaping.
			out = append(out[:0], `{"event":"media","streamSid":"`...)
			out = append(out, sid...)
			out = append(out, `","media":{"payload":"`...)
			out = append(out, m.Media.Payload...)
			out = append(out, `"}}`...)
			if c.Write(ctx, websocket.MessageText, out) != nil {
				return
			}
		}
	}
}

func (b *twilioBot) close() { b.srv.Close() }
