// Command audiosocket-echo-go is a minimal Asterisk AudioSocket bot: it takes
// each connection, logs the call's UUID and DTMF digits, and sends the
// caller's audio straight back. It works the same behind Asterisk's
// AudioSocket() application and behind Switchboard.
//
//	go run ./examples/audiosocket-echo-go -addr 127.0.0.1:9092
//
// then route a call to it: {type: agent, protocol: audiosocket, url: tcp://127.0.0.1:9092}.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"time"
)

// Frame kinds of the AudioSocket protocol: a kind byte, a big-endian uint16
// payload length, the payload.
const (
	kindHangup = 0x00
	kindUUID   = 0x01
	kindDTMF   = 0x03
	kindAudio  = 0x10 // 16-bit signed linear, little-endian, 8 kHz mono
	kindError  = 0xff
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9092", "listen address (port 0 picks a free one)")
	hangupAfter := flag.Duration("hangup-after", 0, "send a hang-up frame this long into each call (0: never)")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %d\n", ln.Addr().(*net.TCPAddr).Port)
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, *hangupAfter)
	}
}

func serve(c net.Conn, hangupAfter time.Duration) {
	defer c.Close()
	if hangupAfter > 0 {
		t := time.AfterFunc(hangupAfter, func() { c.Write([]byte{kindHangup, 0, 0}) })
		defer t.Stop()
	}
	r := bufio.NewReader(c)
	hdr := make([]byte, 3)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return
		}
		payload := make([]byte, binary.BigEndian.Uint16(hdr[1:]))
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		switch hdr[0] {
		case kindUUID:
			log.Printf("call %s", hex.EncodeToString(payload))
		case kindDTMF:
			log.Printf("dtmf %q", payload)
		case kindAudio:
			// Echo: the same frame back; the gateway paces what it receives.
			if _, err := c.Write(append(hdr, payload...)); err != nil {
				return
			}
		case kindHangup:
			log.Print("caller hung up")
			return
		case kindError:
			log.Printf("error %x", payload)
			return
		}
	}
}
