package media

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// StreamConfig is what a Stream needs from the negotiated SDP.
type StreamConfig struct {
	Codec           Codec
	DTMFPayloadType uint8          // 0: none negotiated
	Remote          netip.AddrPort // from SDP; replaced by the real source when RTP arrives (symmetric RTP)
	Timeout         time.Duration  // no RTP for this long → Done() closes, Err() = ErrMediaTimeout; 0 = never
	// JitterMin and JitterMax bound the jitter buffer's adaptive playout delay
	// (0: DefaultJitterMin, DefaultJitterMax: 20 and 200 ms).
	JitterMin, JitterMax time.Duration
	Logger               *slog.Logger
	SRTP                 *SRTP // nil: plain RTP; else SRTP/SRTCP with these SDES keys (srtp.go)
}

// Stream is one call's RTP session on one UDP socket. No goroutine of its own
// waits on the socket: ReadFrame, on the caller's 20 ms clock, first drains it
// into the jitter buffer (and runs the media timeout and RTCP), then takes the
// frame that is due. A stream that nobody reads receives nothing. ReadFrame,
// WriteFrame, Stats, Done, Err and Close may be called from different goroutines.
type Stream struct {
	cfg   StreamConfig
	codec PayloadCodec // guarded by tx.mu once open: Reconfigure may swap it
	rate  int          // PCM rate of frames; fixed for the stream's life
	log   *slog.Logger
	pool  *PortPool
	port  int
	conn  *udpSocket
	local netip.AddrPort
	stats counters

	remote atomic.Pointer[netip.AddrPort] // where WriteFrame sends: SDP's address until RTP latches

	// receive side: rx and jb are touched under mu (one lock per frame: poll, then read).
	mu sync.Mutex
	rx receiver
	jb *jitterBuffer

	tx   sender
	rtcp rtcpSession  // on the odd port above; conn nil if that port was taken
	srtp *srtpSession // nil for plain RTP

	audioPT atomic.Uint32 // the payload type decoded as audio (Reconfigure changes it)
	held    atomic.Bool   // on hold: nothing sent, no media timeout (SetHold)
	resumed atomic.Int64  // unix ns of the last unhold: the timeout counts from there

	closeOnce sync.Once
	doneOnce  sync.Once
	done      chan struct{}
	errMu     sync.Mutex
	err       error
}

// Open binds a free even port (and the odd one above for RTCP). The Stream
// holds them until Close.
func (p *PortPool) Open(cfg StreamConfig) (*Stream, error) {
	c, err := newCodec(cfg.Codec)
	if err != nil {
		return nil, err
	}
	if cfg.Codec.ClockRate == 0 {
		cfg.Codec.ClockRate = uint32(c.Rate())
	}
	var sec *srtpSession
	if cfg.SRTP != nil {
		if sec, err = newSRTPSession(cfg.SRTP); err != nil {
			return nil, err
		}
	}
	conn, port, err := p.bind()
	if err != nil {
		return nil, err
	}
	local := netip.AddrPortFrom(p.ip, uint16(port))
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("rtp_local", local.String())
	s := &Stream{
		cfg:   cfg,
		codec: c,
		rate:  c.Rate(),
		log:   log,
		pool:  p,
		port:  port,
		conn:  conn,
		local: local,
		jb:    newJitterBuffer(c, cfg.Codec.ClockRate, cfg.JitterMin, cfg.JitterMax),
		done:  make(chan struct{}),
		srtp:  sec,
	}
	s.setRemote(unmapAddrPort(cfg.Remote))
	s.audioPT.Store(uint32(cfg.Codec.PayloadType))
	s.tx.init(cfg.Codec)
	s.startRTCP(p, cfg.Codec.ClockRate)
	s.initReceiver()
	log.Debug("rtp stream open", "codec", cfg.Codec.Name, "remote", s.Remote().String())
	return s, nil
}

// LocalAddr is the bound address, for the SDP answer.
func (s *Stream) LocalAddr() netip.AddrPort { return s.local }

// Rate is the PCM rate of the frames ReadFrame and WriteFrame carry (8000 for G.711).
func (s *Stream) Rate() int { return s.rate }

// SetHold puts the stream on hold (a re-INVITE made the peer sendonly or
// inactive): WriteFrame sends nothing, and the media timeout is paused until
// the stream is taken off hold, when it restarts from zero.
func (s *Stream) SetHold(held bool) {
	if !held {
		s.resumed.Store(time.Now().UnixNano())
	}
	s.held.Store(held)
}

// Held reports whether the stream is on hold.
func (s *Stream) Held() bool { return s.held.Load() }

// Reconfigure switches the stream to another codec and remote address, as a
// re-INVITE or UPDATE negotiated. The codec must run at the same PCM and RTP
// clock rates (PCMU ↔ PCMA): the frames on the call's clock keep their size.
// An invalid remote leaves the address as it is.
func (s *Stream) Reconfigure(codec Codec, remote netip.AddrPort) error {
	c, err := newCodec(codec)
	if err != nil {
		return err
	}
	if codec.ClockRate == 0 {
		codec.ClockRate = uint32(c.Rate())
	}
	if c.Rate() != s.rate || codec.ClockRate != s.cfg.Codec.ClockRate {
		return fmt.Errorf("%w: %s at %d Hz cannot replace %s at %d Hz on a running stream",
			ErrUnsupportedCodec, codec.Name, c.Rate(), s.cfg.Codec.Name, s.rate)
	}
	t := &s.tx
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrStreamClosed
	}
	s.codec = c
	t.hdr.PayloadType = codec.PayloadType
	t.mu.Unlock()
	s.mu.Lock()
	s.jb = newJitterBuffer(c, codec.ClockRate, s.cfg.JitterMin, s.cfg.JitterMax)
	s.audioPT.Store(uint32(codec.PayloadType))
	s.mu.Unlock()
	if remote.IsValid() && remote.Port() != 0 {
		s.SetRemote(remote)
	}
	s.log.Info("rtp stream reconfigured", "codec", codec.Name, "pt", codec.PayloadType, "remote", s.Remote().String())
	return nil
}

// Remote is where WriteFrame currently sends: SDP's address, or the latched source.
func (s *Stream) Remote() netip.AddrPort {
	return *s.remote.Load()
}

// SetRemote points WriteFrame at a, as an SDP answer or re-INVITE says; RTP
// arriving from elsewhere still re-latches it (symmetric RTP).
func (s *Stream) SetRemote(a netip.AddrPort) { s.setRemote(unmapAddrPort(a)) }

func (s *Stream) setRemote(a netip.AddrPort) {
	s.remote.Store(&a) // rare (answer, latch): one allocation, and WriteFrame reads it without a lock
}

// ReadFrame fills dst (normally 20 ms, Rate()/50 samples) with the next audio from the
// jitter buffer. It never blocks. It returns false, with dst zeroed, when nothing was
// due: before playout starts, or when the sender has gone quiet. A packet that is due
// but lost is concealed (G.711 Appendix I, or the codec's own) and returns true.
func (s *Stream) ReadFrame(dst []int16) bool {
	return s.readFrame(dst, time.Now())
}

// readFrame is ReadFrame at an explicit time, for simulations.
func (s *Stream) readFrame(dst []int16, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.skipPoll(now) {
		s.poll(now)
	}
	return s.jb.read(dst, now)
}

// Done is closed when the stream ends: media timeout or Close.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err is nil while the stream runs, then ErrMediaTimeout or ErrStreamClosed,
// whichever ended it first.
func (s *Stream) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Stream) finish(err error) {
	s.doneOnce.Do(func() {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		close(s.done)
	})
}

// Close sends RTCP BYE, closes the sockets and returns the port to the pool. It
// is idempotent and always returns nil.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock() // no poll runs while the sockets close (udpSocket has no lock of its own)
		s.tx.mu.Lock()
		s.tx.closed = true // no send either: WriteFrame checks it under tx.mu
		s.tx.mu.Unlock()
		s.closeRTCP()
		s.conn.Close()
		s.rx.closed = true
		s.mu.Unlock()
		s.finish(ErrStreamClosed)
		s.pool.release(s.port)
		st := s.Stats()
		s.log.Debug("rtp stream closed", "packets_in", st.PacketsIn, "packets_out", st.PacketsOut,
			"lost", st.Lost, "late", st.Late, "malformed", st.Malformed)
	})
	return nil
}

func unmapAddrPort(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
