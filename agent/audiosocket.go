package agent

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// AudioSocket frame kinds (Asterisk's res_audiosocket protocol).
const (
	asHangup = 0x00 // no payload: end of the call
	asUUID   = 0x01 // 16 bytes: the stream's UUID, sent first by the client
	asDTMF   = 0x03 // 1 ASCII byte
	asAudio  = 0x10 // signed linear 16-bit little-endian, 8 kHz mono
	asError  = 0xff // optional application error code
)

const (
	asRate        = 8000
	asFrameBytes  = 320 // 20 ms at 8 kHz, 16-bit
	asHeaderBytes = 3   // kind, uint16 big-endian payload length
	asQueueFrames = 50  // 1 s of caller audio the writer may fall behind before frames drop
)

// Errors of the AudioSocket client.
var (
	ErrAudioSocketAddr = errors.New("audiosocket: want tcp://host:port or host:port")
)

// AudioSocket is the client side of Asterisk's AudioSocket protocol, as
// Asterisk's AudioSocket() application speaks it: we connect to the bot's TCP
// address, send the call's UUID, then 20 ms frames of 8 kHz slin both ways,
// DTMF digits, and a hang-up frame at the end. Bots written for Asterisk
// connect unchanged.
type AudioSocket struct {
	Addr           string        // host:port of the bot
	ConnectTimeout time.Duration // 0: the dial ends only with the call's context
	Logger         *slog.Logger
}

// NewAudioSocket checks a route's url (tcp://host:port or host:port).
func NewAudioSocket(url string, connectTimeout time.Duration, log *slog.Logger) (AudioSocket, error) {
	addr := strings.TrimPrefix(url, "tcp://")
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || strings.Contains(addr, "/") {
		return AudioSocket{}, fmt.Errorf("%w, got %q", ErrAudioSocketAddr, url)
	}
	if log == nil {
		log = slog.Default()
	}
	return AudioSocket{Addr: addr, ConnectTimeout: connectTimeout, Logger: log}, nil
}

// Start implements Agent: it connects and sends the UUID frame; the call is
// answered once the bot has accepted the connection.
func (a AudioSocket) Start(ctx context.Context, call Call, ctl Controls) (Session, error) {
	log := call.Logger
	if log == nil {
		log = cmp.Or(a.Logger, slog.Default()).With("call_id", call.ID)
	}
	id := uuid.New()
	log = log.With("protocol", "audiosocket", "uuid", id.String())
	dctx := ctx
	if a.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, a.ConnectTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", a.Addr)
	if err != nil {
		return nil, fmt.Errorf("audiosocket: connect %s: %w", a.Addr, err)
	}
	hello := make([]byte, asHeaderBytes+16)
	putHeader(hello, asUUID, 16)
	copy(hello[asHeaderBytes:], id[:])
	if dl, ok := dctx.Deadline(); ok {
		conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write(hello); err != nil {
		conn.Close()
		return nil, fmt.Errorf("audiosocket: send uuid: %w", err)
	}
	conn.SetWriteDeadline(time.Time{})
	log.Debug("audiosocket connected", "addr", a.Addr)

	s := &audioSocketSession{
		conn: conn,
		ctl:  ctl,
		log:  log,
		q:    newFrameQueue(asQueueFrames, asFrameBytes/2),
		dtmf: make(chan byte, 32),
		done: make(chan struct{}),
	}
	s.wg.Add(2)
	go s.writer()
	go s.reader()
	return s, nil
}

type audioSocketSession struct {
	conn    net.Conn
	ctl     Controls
	log     *slog.Logger
	q       *frameQueue
	dtmf    chan byte
	done    chan struct{}
	closing atomic.Bool
	once    sync.Once
	wg      sync.WaitGroup

	rate int // of the frames Audio gets; set on the clock goroutine, read by the writer after a queued frame
}

// Audio implements Session: the frame is queued for the writer; never blocks.
func (s *audioSocketSession) Audio(frame []int16, rate int) {
	if s.rate == 0 {
		s.rate = rate
	}
	if !s.q.put(frame) {
		if n := s.q.dropped.Load(); n == 1 || n%250 == 0 {
			s.log.Warn("audiosocket bot not reading, caller audio dropped", "frames", n)
		}
	}
}

// Event implements Session: caller DTMF becomes a DTMF frame.
func (s *audioSocketSession) Event(e Event) {
	if e.Kind != DTMF || e.Digit > 0x7f {
		return
	}
	select {
	case s.dtmf <- byte(e.Digit):
	default:
		s.log.Warn("audiosocket dtmf queue full, digit dropped", "digit", string(e.Digit))
	}
}

// Close implements Session: a hang-up frame, then the connection is closed.
func (s *audioSocketSession) Close() {
	s.once.Do(func() {
		s.closing.Store(true)
		s.conn.SetWriteDeadline(time.Now().Add(time.Second)) // unblocks a writer stuck on a bot that stopped reading
		close(s.done)
		s.wg.Wait()
	})
}

func putHeader(b []byte, kind byte, n int) {
	b[0] = kind
	binary.BigEndian.PutUint16(b[1:3], uint16(n))
}

// writer owns the connection's write side.
func (s *audioSocketSession) writer() {
	defer s.wg.Done()
	defer s.conn.Close() // also ends the reader
	buf := make([]byte, asHeaderBytes+asFrameBytes)
	var res *pcm.Resampler
	var scratch []int16
	failed := false
	write := func(b []byte) {
		if failed {
			return
		}
		if _, err := s.conn.Write(b); err != nil {
			failed = true
			if !s.closing.Load() {
				s.log.Warn("audiosocket write failed", "err", err)
				Fail(s.ctl, fmt.Errorf("audiosocket: connection lost: %w", err))
			}
		}
	}
	for {
		select {
		case f := <-s.q.full:
			samples := f
			if s.rate != asRate && s.rate != 0 {
				if res == nil {
					res = pcm.NewResampler(s.rate, asRate)
				}
				scratch = res.Process(scratch, f)
				samples = scratch
			}
			n := 2 * len(samples)
			if n > len(buf)-asHeaderBytes {
				buf = make([]byte, asHeaderBytes+n)
			}
			putHeader(buf, asAudio, n)
			for i, v := range samples {
				binary.LittleEndian.PutUint16(buf[asHeaderBytes+2*i:], uint16(v))
			}
			write(buf[:asHeaderBytes+n])
			s.q.release(f)
		case d := <-s.dtmf:
			write([]byte{asDTMF, 0, 1, d})
		case <-s.done:
			write([]byte{asHangup, 0, 0})
			return
		}
	}
}

// reader turns the bot's frames into call actions.
func (s *audioSocketSession) reader() {
	defer s.wg.Done()
	r := bufio.NewReaderSize(s.conn, 4096)
	var hdr [asHeaderBytes]byte
	payload := make([]byte, asFrameBytes)
	samples := make([]int16, asFrameBytes/2)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			s.lost(err)
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[1:]))
		if n > cap(payload) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			s.lost(err)
			return
		}
		switch hdr[0] {
		case asAudio:
			k := n / 2
			if k > cap(samples) {
				samples = make([]int16, k)
			}
			samples = samples[:k]
			for i := range samples {
				samples[i] = int16(binary.LittleEndian.Uint16(payload[2*i:]))
			}
			s.ctl.Play(samples, asRate)
		case asHangup:
			s.log.Info("audiosocket bot hung up")
			s.ctl.Hangup("audiosocket: bot hung up")
			return
		case asError:
			s.log.Warn("audiosocket bot error", "code", fmt.Sprintf("%x", payload))
			Fail(s.ctl, fmt.Errorf("audiosocket: bot error %x", payload))
			return
		case asDTMF:
			// Not in Asterisk's direction of the protocol; we take it as "send this digit".
			if n == 1 {
				s.ctl.SendDTMF(string(rune(payload[0])))
			}
		case asUUID:
		default:
			s.log.Debug("audiosocket frame of unknown kind ignored", "kind", hdr[0], "bytes", n)
		}
	}
}

// lost ends the call when the bot goes away, unless we are the ones closing:
// a clean close is the bot hanging up (the protocol allows it), anything else
// a failure the route may fall back from.
func (s *audioSocketSession) lost(err error) {
	if s.closing.Load() {
		return
	}
	if errors.Is(err, io.EOF) {
		s.log.Info("audiosocket bot closed the connection")
		s.ctl.Hangup("audiosocket: bot closed the connection")
		return
	}
	s.log.Warn("audiosocket connection lost", "err", err)
	Fail(s.ctl, fmt.Errorf("audiosocket: connection lost: %w", err))
}
