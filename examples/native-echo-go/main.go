// Command native-echo-go is a minimal bot for Switchboard's native WebSocket
// protocol (docs/protocols.md): it accepts each call at the rate it asks for
// and sends the caller's audio straight back.
//
//	go run ./examples/native-echo-go -addr 127.0.0.1:8090 -rate 16000
//
// then route a call to it: {type: agent, protocol: switchboard, url: ws://127.0.0.1:8090/}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"

	"github.com/coder/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address (port 0 picks a free one)")
	rate := flag.Int("rate", 16000, "audio rate to ask for: 8000, 16000 or 24000")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %d\n", ln.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		if err := serve(r.Context(), c, *rate); err != nil {
			log.Print(err)
		}
	})))
}

type message struct {
	Type   string            `json:"type"`
	Rate   int               `json:"rate,omitempty"`
	Name   string            `json:"name,omitempty"`
	Digit  string            `json:"digit,omitempty"`
	Reason string            `json:"reason,omitempty"`
	Call   map[string]string `json:"call,omitempty"`
	Params map[string]string `json:"params,omitempty"`
}

// serve runs one call: start → accept, then echo until the gateway hangs up.
func serve(ctx context.Context, c *websocket.Conn, rate int) error {
	var start message
	if err := read(ctx, c, &start); err != nil || start.Type != "start" {
		return fmt.Errorf("want start: %v", err)
	}
	log.Printf("call %s from %s to %s, params %v", start.Call["id"], start.Call["from"], start.Call["to"], start.Params)
	if err := write(ctx, c, message{Type: "accept", Rate: rate}); err != nil {
		return err
	}
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return nil // the gateway closed the call
		}
		if typ == websocket.MessageBinary {
			if err := c.Write(ctx, websocket.MessageBinary, data); err != nil {
				return err
			}
			continue
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		switch m.Type {
		case "dtmf":
			log.Printf("dtmf %s", m.Digit)
		case "mark":
			log.Printf("mark played %s", m.Name)
		case "hangup":
			log.Printf("hangup: %s", m.Reason)
			return c.Close(websocket.StatusNormalClosure, "")
		}
	}
}

func read(ctx context.Context, c *websocket.Conn, v any) error {
	_, data, err := c.Read(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func write(ctx context.Context, c *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, b)
}
