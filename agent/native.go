package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// Native speaks Switchboard's own WebSocket protocol: JSON control messages
// and binary PCM16 frames at the rate the bot asks for. See docs/protocols.md.
type Native struct {
	URL            string
	ConnectTimeout time.Duration
}

// NativeRates are the audio rates a native bot may ask for.
var NativeRates = []int{8000, 16000, 24000}

// Native protocol messages, both ways: {"type": ..., ...}.
type nativeMsg struct {
	Type    string            `json:"type"`
	Rate    int               `json:"rate,omitempty"`    // accept
	Name    string            `json:"name,omitempty"`    // mark
	Reason  string            `json:"reason,omitempty"`  // hangup
	Target  string            `json:"target,omitempty"`  // transfer
	Digits  string            `json:"digits,omitempty"`  // send_dtmf
	Digit   string            `json:"digit,omitempty"`   // dtmf
	Call    *nativeCall       `json:"call,omitempty"`    // start
	Params  map[string]string `json:"params,omitempty"`  // start
	Rates   []int             `json:"rates,omitempty"`   // start: what accept may choose
	Message string            `json:"message,omitempty"` // error
}

type nativeCall struct {
	ID    string `json:"id"`
	From  string `json:"from"`
	To    string `json:"to"`
	Route string `json:"route"`
}

var errNoAccept = errors.New("bot did not accept the call")

// Start implements Agent: connect, send start, and wait (within the connect
// timeout) for the bot's accept, which names its audio rate.
func (a Native) Start(ctx context.Context, call Call, ctl Controls) (Session, error) {
	log := call.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("protocol", "switchboard")
	begin := time.Now()
	w, err := dialWS(ctx, a.URL, a.ConnectTimeout, nil, log)
	if err != nil {
		return nil, err
	}
	w.sendJSON(nativeMsg{Type: "start", Call: &nativeCall{ID: call.ID, From: call.From, To: call.To, Route: call.Route},
		Params: call.Params, Rates: NativeRates})

	actx, cancel := context.WithTimeout(ctx, max(a.ConnectTimeout-time.Since(begin), 10*time.Millisecond))
	defer cancel()
	var m nativeMsg
	if err := w.readJSON(actx, &m); err != nil || m.Type != "accept" || !slices.Contains(NativeRates, m.Rate) {
		switch {
		case err != nil && actx.Err() != nil:
			err = fmt.Errorf("%w within %s", errNoAccept, a.ConnectTimeout)
		case err != nil:
			err = fmt.Errorf("%w: %v", errNoAccept, err)
		case m.Type == "hangup":
			err = fmt.Errorf("%w: bot hung up: %s", errNoAccept, m.Reason)
		default:
			err = fmt.Errorf("%w: want {\"type\":\"accept\",\"rate\":8000|16000|24000}, got type %q rate %d", errNoAccept, m.Type, m.Rate)
		}
		w.abort()
		return nil, err
	}
	s := &nativeSession{w: w, ctl: ctl, rate: m.Rate}
	w.startReading(s.handle, reportTo(ctl))
	log.Info("bot connected", "url", a.URL, "rate", m.Rate)
	return s, nil
}

type nativeSession struct {
	w    *wsConn
	ctl  Controls
	rate int // the bot's audio rate, both ways

	res   *pcm.Resampler // caller rate → bot rate, made on the first frame that needs it
	frame []int16
	in    []int16 // handle's decode buffer
	odd   []byte  // a byte of a sample split across messages
}

// Audio implements Session: one binary message per 20 ms frame, after
// taking in what the bot sent (unless this tick's audio is queued already:
// pollUnless).
func (s *nativeSession) Audio(frame []int16, rate int) {
	s.w.pollUnless(s.ctl.Queued() >= pcm.FrameDuration)
	if rate != s.rate {
		if s.res == nil {
			s.res = pcm.NewResampler(rate, s.rate)
		}
		s.frame = s.res.Process(s.frame, frame)
		frame = s.frame
	}
	b := s.w.buf()
	for _, v := range frame {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	s.w.send(websocket.MessageBinary, b, true)
}

// Event implements Session.
func (s *nativeSession) Event(e Event) {
	switch e.Kind {
	case DTMF:
		s.w.sendJSON(nativeMsg{Type: "dtmf", Digit: string(e.Digit)})
	case MarkPlayed:
		s.w.sendJSON(nativeMsg{Type: "mark", Name: e.Name})
	}
}

// Close implements Session: hangup, then a normal close.
func (s *nativeSession) Close() {
	b, _ := json.Marshal(nativeMsg{Type: "hangup", Reason: "call ended"})
	s.w.close(b)
}

// handle acts on one message from the bot (from poll on the clock, or the reader goroutine).
func (s *nativeSession) handle(typ websocket.MessageType, data []byte) error {
	if typ == websocket.MessageBinary {
		if len(s.odd) == 1 && len(data) > 0 {
			s.in = append(s.in[:0], int16(binary.LittleEndian.Uint16([]byte{s.odd[0], data[0]})))
			data = data[1:]
			s.odd = s.odd[:0]
		} else {
			s.in = s.in[:0]
		}
		for ; len(data) >= 2; data = data[2:] {
			s.in = append(s.in, int16(binary.LittleEndian.Uint16(data)))
		}
		s.odd = append(s.odd[:0], data...)
		s.ctl.Play(s.in, s.rate)
		return nil
	}
	var m nativeMsg
	if err := json.Unmarshal(data, &m); err != nil {
		s.w.log.Warn("bad message from bot, ignored", "err", err)
		return nil
	}
	switch m.Type {
	case "clear":
		s.ctl.Clear()
	case "mark":
		s.ctl.Mark(m.Name)
	case "hangup":
		reason := m.Reason
		if reason == "" {
			reason = "bot hung up"
		}
		s.ctl.Hangup(reason)
	case "transfer":
		s.ctl.Transfer(m.Target)
	case "send_dtmf":
		s.ctl.SendDTMF(m.Digits)
	default:
		s.w.sendJSON(nativeMsg{Type: "error", Message: fmt.Sprintf("unknown message type %q", m.Type)})
	}
	return nil
}
