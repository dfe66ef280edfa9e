package agent

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// OpenAI Realtime defaults.
const (
	DefaultOpenAIURL   = "wss://api.openai.com/v1/realtime"
	DefaultOpenAIModel = "gpt-realtime"
	DefaultOpenAIVoice = "alloy"
)

// Audio formats of an OpenAI Realtime session, as the dialplan names them.
const (
	OpenAIFormatULaw  = "g711_ulaw" // audio/pcmu: the call's own G.711, no transcoding
	OpenAIFormatPCM16 = "pcm16"     // audio/pcm at 24 kHz
)

// Tools we declare to the model; a call to one becomes a call action.
const (
	toolEndCall      = "end_call"
	toolTransferCall = "transfer_call"
)

// Marks that hold an action until the model's last words have played.
const (
	markEndCall  = "openai.end_call"
	markTransfer = "openai.transfer_call"
)

const (
	openaiQueueFrames = 50      // 1 s of caller audio the writer may fall behind before frames drop
	openaiReadLimit   = 8 << 20 // audio deltas can carry seconds of base64 audio
)

// ErrOpenAISetup is a failure of the session before the call is answered.
var ErrOpenAISetup = errors.New("openai realtime: session setup failed")

// OpenAIRealtime puts the caller in a conversation with an OpenAI Realtime
// model over its WebSocket protocol: caller audio is appended to the input
// buffer, the model's audio deltas are played paced, barge-in truncates the
// model's reply to what the caller heard, and the tools end_call and
// transfer_call hang up or transfer the call.
type OpenAIRealtime struct {
	URL            string // base URL; ?model= is added when it has none
	Model          string
	Voice          string
	Instructions   string
	APIKey         string // sent as Authorization: Bearer
	Format         string // OpenAIFormatULaw (default) or OpenAIFormatPCM16
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// NewOpenAIRealtime fills defaults and checks the settings.
func NewOpenAIRealtime(o OpenAIRealtime) (OpenAIRealtime, error) {
	if o.URL == "" {
		o.URL = DefaultOpenAIURL
	}
	if o.Model == "" {
		o.Model = DefaultOpenAIModel
	}
	if o.Voice == "" {
		o.Voice = DefaultOpenAIVoice
	}
	if o.Format == "" {
		o.Format = OpenAIFormatULaw
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Format != OpenAIFormatULaw && o.Format != OpenAIFormatPCM16 {
		return o, fmt.Errorf("openai realtime: audio format %q; want %s or %s", o.Format, OpenAIFormatULaw, OpenAIFormatPCM16)
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return o, fmt.Errorf("openai realtime: url %q; want ws:// or wss://", o.URL)
	}
	if o.APIKey == "" {
		return o, errors.New("openai realtime: no API key")
	}
	return o, nil
}

func (o OpenAIRealtime) endpoint() string {
	u, err := url.Parse(o.URL)
	if err != nil {
		return o.URL
	}
	q := u.Query()
	if q.Get("model") == "" {
		q.Set("model", o.Model)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// audioFormat is the GA session's audio format object.
func (o OpenAIRealtime) audioFormat() map[string]any {
	if o.Format == OpenAIFormatPCM16 {
		return map[string]any{"type": "audio/pcm", "rate": 24000}
	}
	return map[string]any{"type": "audio/pcmu"}
}

func (o OpenAIRealtime) sessionUpdate() []byte {
	msg := map[string]any{
		"type": "session.update",
		"session": map[string]any{
			"type":              "realtime",
			"model":             o.Model,
			"output_modalities": []string{"audio"},
			"instructions":      o.Instructions,
			"audio": map[string]any{
				"input": map[string]any{
					"format":         o.audioFormat(),
					"turn_detection": map[string]any{"type": "server_vad"},
				},
				"output": map[string]any{
					"format": o.audioFormat(),
					"voice":  o.Voice,
				},
			},
			"tools": []any{
				map[string]any{
					"type":        "function",
					"name":        toolEndCall,
					"description": "Hang up the phone call, after saying goodbye.",
					"parameters": map[string]any{"type": "object", "properties": map[string]any{
						"reason": map[string]any{"type": "string", "description": "why the call ends"},
					}},
				},
				map[string]any{
					"type":        "function",
					"name":        toolTransferCall,
					"description": "Transfer the caller to another phone number or SIP address.",
					"parameters": map[string]any{"type": "object", "properties": map[string]any{
						"target": map[string]any{"type": "string", "description": "phone number or sip: URI"},
					}, "required": []string{"target"}},
				},
			},
			"tool_choice": "auto",
		},
	}
	b, _ := json.Marshal(msg)
	return b
}

// rtEvent holds the fields of the server events we act on.
type rtEvent struct {
	Type         string `json:"type"`
	Delta        string `json:"delta"`
	ItemID       string `json:"item_id"`
	ContentIndex int    `json:"content_index"`
	Name         string `json:"name"`
	CallID       string `json:"call_id"`
	Arguments    string `json:"arguments"`
	Item         *struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		Name      string `json:"name"`
		CallID    string `json:"call_id"`
		Arguments string `json:"arguments"`
	} `json:"item"`
	Error *struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Start implements Agent: it connects, configures the session and returns
// once the server has confirmed the configuration (session.updated).
func (o OpenAIRealtime) Start(ctx context.Context, call Call, ctl Controls) (Session, error) {
	log := call.Logger
	if log == nil {
		log = cmp.Or(o.Logger, slog.Default()).With("call_id", call.ID)
	}
	log = log.With("protocol", "openai-realtime")
	sctx := ctx
	if o.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, o.ConnectTimeout)
		defer cancel()
	}
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+o.APIKey)
	conn, _, err := websocket.Dial(sctx, o.endpoint(), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, fmt.Errorf("%w: connect: %v", ErrOpenAISetup, err)
	}
	conn.SetReadLimit(openaiReadLimit)
	if err := conn.Write(sctx, websocket.MessageText, o.sessionUpdate()); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("%w: session.update: %v", ErrOpenAISetup, err)
	}
	for {
		_, data, err := conn.Read(sctx)
		if err != nil {
			conn.CloseNow()
			return nil, fmt.Errorf("%w: waiting for session.updated: %v", ErrOpenAISetup, err)
		}
		var e rtEvent
		if json.Unmarshal(data, &e) != nil {
			continue
		}
		if e.Type == "error" && e.Error != nil {
			conn.CloseNow()
			return nil, fmt.Errorf("%w: %s: %s", ErrOpenAISetup, e.Error.Code, e.Error.Message)
		}
		if e.Type == "session.updated" {
			break
		}
	}
	log.Debug("openai realtime session ready", "model", o.Model, "format", o.Format)

	s := &openaiSession{
		o:    o,
		conn: conn,
		ctl:  ctl,
		log:  log,
		q:    newFrameQueue(openaiQueueFrames, pcm.FrameSamples(48000)),
		send: make(chan []byte, 16),
		done: make(chan struct{}),
		seen: map[string]bool{},
	}
	s.rctx, s.rcancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.writer()
	go s.reader()
	return s, nil
}

type openaiSession struct {
	o       OpenAIRealtime
	conn    *websocket.Conn
	ctl     Controls
	log     *slog.Logger
	q       *frameQueue
	send    chan []byte // control messages from the reader for the writer
	done    chan struct{}
	closing atomic.Bool
	once    sync.Once
	wg      sync.WaitGroup
	rctx    context.Context
	rcancel context.CancelFunc

	rate int // of the frames Audio gets; written before the first put

	// reader-goroutine state: the assistant audio item being played
	item      string
	content   int
	received  time.Duration // of item's audio handed to Play
	truncated string        // item cut by barge-in: its late deltas are dropped
	seen      map[string]bool

	transferTo atomic.Pointer[string]
}

// Audio implements Session: queued for the writer; never blocks.
func (s *openaiSession) Audio(frame []int16, rate int) {
	if s.rate == 0 {
		s.rate = rate
	}
	if !s.q.put(frame) {
		if n := s.q.dropped.Load(); n == 1 || n%250 == 0 {
			s.log.Warn("openai realtime connection not keeping up, caller audio dropped", "frames", n)
		}
	}
}

// Event implements Session: the marks that held an end_call or a transfer
// until the model's last words played release them.
func (s *openaiSession) Event(e Event) {
	if e.Kind != MarkPlayed {
		return
	}
	switch e.Name {
	case markEndCall:
		s.ctl.Hangup("openai: end_call")
	case markTransfer:
		if t := s.transferTo.Swap(nil); t != nil {
			s.ctl.Transfer(*t)
		}
	}
}

// Close implements Session.
func (s *openaiSession) Close() {
	s.once.Do(func() {
		s.closing.Store(true)
		close(s.done)
		s.wg.Wait()
		s.rcancel()
	})
}

// writer owns the connection's write side: caller audio and control messages.
func (s *openaiSession) writer() {
	defer s.wg.Done()
	wctx := context.Background() // no per-write AfterFunc allocation; Close unblocks a stuck write by closing the conn
	var res *pcm.Resampler
	var scratch []int16
	var raw []byte
	msg := make([]byte, 0, 2048)
	const head, tail = `{"type":"input_audio_buffer.append","audio":"`, `"}`
	failed := false
	write := func(b []byte) {
		if failed {
			return
		}
		if err := s.conn.Write(wctx, websocket.MessageText, b); err != nil {
			failed = true
			if !s.closing.Load() {
				s.log.Warn("openai realtime write failed", "err", err)
				Fail(s.ctl, fmt.Errorf("openai: connection lost: %w", err))
			}
		}
	}
	for {
		select {
		case f := <-s.q.full:
			want := asRate
			if s.o.Format == OpenAIFormatPCM16 {
				want = 24000
			}
			samples := f
			if s.rate != want && s.rate != 0 {
				if res == nil {
					res = pcm.NewResampler(s.rate, want)
				}
				scratch = res.Process(scratch, f)
				samples = scratch
			}
			raw = raw[:0]
			if s.o.Format == OpenAIFormatPCM16 {
				for _, v := range samples {
					raw = binary.LittleEndian.AppendUint16(raw, uint16(v))
				}
			} else {
				raw = pcm.AppendUlaw(raw, samples)
			}
			msg = append(msg[:0], head...)
			msg = base64.StdEncoding.AppendEncode(msg, raw)
			msg = append(msg, tail...)
			write(msg)
			s.q.release(f)
		case m := <-s.send:
			write(m)
		case <-s.done:
			closed := make(chan struct{})
			go func() { s.conn.Close(websocket.StatusNormalClosure, "call ended"); close(closed) }()
			select {
			case <-closed:
			case <-time.After(time.Second): // the server does not answer our close: drop it
				s.rcancel()
				<-closed
			}
			return
		}
	}
}

// queue hands a control message to the writer.
func (s *openaiSession) queue(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	select {
	case s.send <- b:
	default:
		s.log.Warn("openai realtime control queue full, message dropped")
	}
}

// reader acts on the server's events.
func (s *openaiSession) reader() {
	defer s.wg.Done()
	var raw []byte
	var samples []int16
	for {
		_, data, err := s.conn.Read(s.rctx)
		if err != nil {
			if !s.closing.Load() {
				reason := "openai: connection lost: " + err.Error()
				if websocket.CloseStatus(err) != -1 {
					reason = fmt.Sprintf("openai: server closed the connection (%d)", websocket.CloseStatus(err))
				}
				s.log.Warn(reason)
				Fail(s.ctl, errors.New(reason))
			}
			return
		}
		var e rtEvent
		if err := json.Unmarshal(data, &e); err != nil {
			s.log.Debug("openai realtime: bad event", "err", err)
			continue
		}
		switch e.Type {
		case "response.output_audio.delta", "response.audio.delta":
			if e.ItemID != "" && e.ItemID == s.truncated {
				continue
			}
			n := base64.StdEncoding.DecodedLen(len(e.Delta))
			if cap(raw) < n {
				raw = make([]byte, n)
			}
			n, err := base64.StdEncoding.Decode(raw[:n], []byte(e.Delta))
			if err != nil {
				s.log.Debug("openai realtime: bad audio delta", "err", err)
				continue
			}
			rate := asRate
			if s.o.Format == OpenAIFormatPCM16 {
				rate = 24000
				samples = samples[:0]
				for i := 0; i+1 < n; i += 2 {
					samples = append(samples, int16(binary.LittleEndian.Uint16(raw[i:])))
				}
			} else {
				samples = pcm.AppendFromUlaw(samples[:0], raw[:n])
			}
			if e.ItemID != s.item {
				s.item, s.content, s.received = e.ItemID, e.ContentIndex, 0
			}
			s.received += time.Duration(len(samples)) * time.Second / time.Duration(rate)
			s.ctl.Play(samples, rate)
		case "input_audio_buffer.speech_started":
			s.bargeIn()
		case "response.function_call_arguments.done":
			s.toolCall(e.CallID, e.Name, e.Arguments)
		case "response.output_item.done":
			if e.Item != nil && e.Item.Type == "function_call" {
				s.toolCall(e.Item.CallID, e.Item.Name, e.Item.Arguments)
			}
		case "error":
			if e.Error != nil {
				s.log.Warn("openai realtime error", "type", e.Error.Type, "code", e.Error.Code, "message", e.Error.Message)
			}
		}
	}
}

// bargeIn stops the model's audio at once and tells the model how much of its
// reply the caller heard, so its memory of the conversation matches the call.
func (s *openaiSession) bargeIn() {
	pending := s.ctl.Queued()
	s.ctl.Clear()
	if s.item == "" || pending <= 0 {
		return // nothing was cut off
	}
	played := max(s.received-pending, 0)
	s.queue(map[string]any{
		"type":          "conversation.item.truncate",
		"item_id":       s.item,
		"content_index": s.content,
		"audio_end_ms":  played.Milliseconds(),
	})
	s.log.Debug("barge-in", "item_id", s.item, "played_ms", played.Milliseconds(), "cut_ms", pending.Milliseconds())
	s.truncated, s.item, s.received = s.item, "", 0
}

// toolCall runs end_call and transfer_call once each per call_id (both the
// arguments.done and the output_item.done events announce the same call).
func (s *openaiSession) toolCall(callID, name, args string) {
	if callID != "" {
		if s.seen[callID] {
			return
		}
		s.seen[callID] = true
	}
	s.log.Info("openai tool call", "name", name, "arguments", args)
	switch name {
	case toolEndCall:
		s.ctl.Mark(markEndCall) // hang up once the goodbye has played
	case toolTransferCall:
		var a struct {
			Target string `json:"target"`
		}
		if err := json.Unmarshal([]byte(args), &a); err != nil || strings.TrimSpace(a.Target) == "" {
			s.log.Warn("openai transfer_call without a target", "arguments", args)
			s.toolOutput(callID, `{"error":"target required"}`)
			return
		}
		t := strings.TrimSpace(a.Target)
		s.transferTo.Store(&t)
		s.toolOutput(callID, `{"status":"transferring"}`)
		s.ctl.Mark(markTransfer)
	default:
		s.toolOutput(callID, `{"error":"unknown function"}`)
	}
}

func (s *openaiSession) toolOutput(callID, output string) {
	if callID == "" {
		return
	}
	s.queue(map[string]any{
		"type": "conversation.item.create",
		"item": map[string]any{"type": "function_call_output", "call_id": callID, "output": output},
	})
}
