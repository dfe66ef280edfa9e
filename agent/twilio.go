package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// Twilio speaks Twilio's bidirectional Media Streams protocol: like Twilio,
// the gateway dials the bot's WebSocket when the call arrives, so a bot
// written for Twilio works unchanged. See docs/protocols.md.
type Twilio struct {
	URL            string
	ConnectTimeout time.Duration
	// ChunkMs is the audio per media message to the bot: 20 (Twilio's own,
	// the default when 0) or a larger multiple of 20 up to 100. Larger chunks
	// cost the bot's first hearing of each chunk that much more latency and
	// the gateway proportionally fewer WebSocket messages.
	ChunkMs int
}

const twilioRate = 8000 // audio/x-mulaw 8000 Hz mono, as Twilio sends it

// Start implements Agent: connect, send connected and start.
func (a Twilio) Start(ctx context.Context, call Call, ctl Controls) (Session, error) {
	log := call.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("protocol", "twilio")
	w, err := dialWS(ctx, a.URL, a.ConnectTimeout, nil, log)
	if err != nil {
		return nil, err
	}
	s := &twilioSession{
		w:          w,
		ctl:        ctl,
		accountSid: twilioSid("AC"),
		callSid:    twilioSid("CA"),
		streamSid:  twilioSid("MZ"),
		chunkMs:    max(a.ChunkMs, 20),
	}
	params := call.Params
	if params == nil {
		params = map[string]string{}
	}
	w.sendJSON(map[string]any{"event": "connected", "protocol": "Call", "version": "1.0.0"})
	w.sendJSON(map[string]any{
		"event":          "start",
		"sequenceNumber": s.nextSeq(),
		"start": map[string]any{
			"accountSid":       s.accountSid,
			"streamSid":        s.streamSid,
			"callSid":          s.callSid,
			"tracks":           []string{"inbound"},
			"customParameters": params,
			"mediaFormat":      map[string]any{"encoding": "audio/x-mulaw", "sampleRate": twilioRate, "channels": 1},
		},
		"streamSid": s.streamSid,
	})
	w.startReading(s.handle, reportTo(ctl))
	log.Info("bot connected", "url", a.URL, "stream_sid", s.streamSid)
	return s, nil
}

// twilioSid is a Twilio-shaped id: a two-letter prefix and 32 hex digits.
func twilioSid(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

type twilioSession struct {
	w                              *wsConn
	ctl                            Controls
	accountSid, callSid, streamSid string

	mu    sync.Mutex // sequence numbers are shared by the clock and the reader
	seq   int64
	chunk int64

	chunkMs int   // audio per media message
	sentMs  int64 // audio sent so far: the next message's timestamp

	res    *pcm.Resampler // only if frames ever come at another rate
	frame  []int16
	ulaw   []byte
	ulawIn []byte  // handle's base64 decode buffer
	played []int16 // handle's µ-law decode buffer
}

func (s *twilioSession) nextSeq() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return strconv.FormatInt(s.seq, 10)
}

// Audio implements Session: one media message per chunkMs of frames. It
// first takes in what the bot sent, so its audio plays from this very tick,
// unless this tick's audio is queued already (pollUnless).
func (s *twilioSession) Audio(frame []int16, rate int) {
	s.w.pollUnless(s.ctl.Queued() >= pcm.FrameDuration)
	if rate != twilioRate {
		if s.res == nil {
			s.res = pcm.NewResampler(rate, twilioRate)
		}
		s.frame = s.res.Process(s.frame, frame)
		frame = s.frame
	}
	s.ulaw = pcm.AppendUlaw(s.ulaw, frame)
	if len(s.ulaw) >= s.chunkMs*twilioRate/1000 {
		s.sendMedia()
	}
}

// sendMedia sends the µ-law gathered so far as one media message.
func (s *twilioSession) sendMedia() {
	s.mu.Lock()
	s.seq++
	s.chunk++
	seq, chunk := s.seq, s.chunk
	s.mu.Unlock()
	ts := s.sentMs
	s.sentMs += int64(len(s.ulaw) * 1000 / twilioRate)

	b := s.w.buf()
	b = append(b, `{"event":"media","sequenceNumber":"`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","media":{"track":"inbound","chunk":"`...)
	b = strconv.AppendInt(b, chunk, 10)
	b = append(b, `","timestamp":"`...)
	b = strconv.AppendInt(b, ts, 10) // ms of audio before this chunk
	b = append(b, `","payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, s.ulaw)
	s.ulaw = s.ulaw[:0]
	b = append(b, `"},"streamSid":"`...)
	b = append(b, s.streamSid...)
	b = append(b, `"}`...)
	s.w.send(websocket.MessageText, b, true)
}

// Event implements Session.
func (s *twilioSession) Event(e Event) {
	switch e.Kind {
	case DTMF:
		s.w.sendJSON(map[string]any{"event": "dtmf", "streamSid": s.streamSid, "sequenceNumber": s.nextSeq(),
			"dtmf": map[string]string{"track": "inbound_track", "digit": string(e.Digit)}})
	case MarkPlayed:
		s.w.sendJSON(map[string]any{"event": "mark", "streamSid": s.streamSid, "sequenceNumber": s.nextSeq(),
			"mark": map[string]string{"name": e.Name}})
	}
}

// Close implements Session: stop, then a normal close. The audio of a
// part-filled chunk is not sent: a chain's fallback closes a session while
// the call's clock may still be inside its Audio, which owns that audio.
func (s *twilioSession) Close() {
	stop, _ := json.Marshal(map[string]any{"event": "stop", "sequenceNumber": s.nextSeq(), "streamSid": s.streamSid,
		"stop": map[string]string{"accountSid": s.accountSid, "callSid": s.callSid}})
	s.w.close(stop)
}

// twilioIn is a message from the bot; only the fields we act on.
type twilioIn struct {
	Event string `json:"event"`
	Media struct {
		Payload []byte `json:"payload"` // base64 in JSON, decoded by encoding/json
	} `json:"media"`
	Mark struct {
		Name string `json:"name"`
	} `json:"mark"`
}

// handle acts on one message from the bot (from poll on the clock, or the reader goroutine).
func (s *twilioSession) handle(typ websocket.MessageType, data []byte) error {
	if typ != websocket.MessageText {
		return fmt.Errorf("binary message; Media Streams messages are JSON text")
	}
	if p, ok := twilioMediaPayload(data); ok {
		n := base64.StdEncoding.DecodedLen(len(p))
		s.ulawIn = slices.Grow(s.ulawIn[:0], n)[:n]
		if n, err := base64.StdEncoding.Decode(s.ulawIn, p); err == nil {
			s.play(s.ulawIn[:n])
			return nil
		} // else encoding/json below finds and reports the same error
	}
	var m twilioIn
	if err := json.Unmarshal(data, &m); err != nil {
		s.w.log.Warn("bad message from bot, ignored", "err", err)
		return nil
	}
	switch m.Event {
	case "media":
		s.play(m.Media.Payload)
	case "mark":
		s.ctl.Mark(m.Mark.Name)
	case "clear":
		s.ctl.Clear()
	default:
		s.w.log.Debug("message from bot ignored", "event", m.Event)
	}
	return nil
}

// play decodes µ-law from the bot and queues it for the caller.
func (s *twilioSession) play(ulaw []byte) {
	s.played = pcm.AppendFromUlaw(s.played[:0], ulaw)
	s.ctl.Play(s.played, twilioRate)
}
