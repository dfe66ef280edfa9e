package media

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

func srtpKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, SRTPKeyLen)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// peerContext is the far end's view of a key, in pion's own API, independent of srtp.go.
func peerContext(t testing.TB, key []byte) *srtp.Context {
	t.Helper()
	c, err := srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Two SRTP streams with crossed SDES keys carry a tone, and what crosses the wire is
// neither the µ-law of the tone nor readable without the sender's key.
func TestSRTPLoopbackTone(t *testing.T) {
	pool := newTestPool(t, 44000)
	ka, kb := srtpKey(t), srtpKey(t)
	a := openStream(t, pool, StreamConfig{Codec: PCMU, SRTP: &SRTP{Local: ka, Remote: kb}})
	b := openStream(t, pool, StreamConfig{Codec: PCMU, SRTP: &SRTP{Local: kb, Remote: ka}, Remote: a.LocalAddr()})
	a.setRemote(b.LocalAddr())
	if !a.Secure() || !b.Secure() {
		t.Fatal("streams opened with keys do not report Secure")
	}

	const frames = 25
	tone := pcm.Tone(1000, 8000, frames*160, 0.5)
	for f := range frames {
		if err := a.WriteFrame(tone[f*160:(f+1)*160], f == 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all packets", func() bool { return b.Stats().PacketsIn == frames })
	var got []int16
	frame := make([]int16, 160)
	for f := range frames {
		if !b.ReadFrame(frame) {
			t.Fatalf("frame %d: nothing due", f)
		}
		got = append(got, frame...)
	}
	if f := pcm.DominantFrequency(got, 8000); f != 1000 {
		t.Errorf("dominant frequency %v Hz, want 1000", f)
	}
	if e := sampleError(got, tone); e > 0.05 {
		t.Errorf("decrypted audio differs from the tone by %.1f%%", 100*e)
	}
	if st := b.Stats(); st.Malformed != 0 {
		t.Errorf("receiver counted %d malformed packets", st.Malformed)
	}

	// The wire: a plain socket in b's place sees an auth tag and ciphertext.
	sniff := udpPeer(t)
	a.setRemote(addrOf(sniff))
	frameIn := tone[:160]
	if err := a.WriteFrame(frameIn, false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	sniff.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := sniff.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	wire := buf[:n]
	if n != 12+160+10 {
		t.Fatalf("SRTP packet is %d bytes, want 182 (header, payload, 80-bit tag)", n)
	}
	plainPayload := make([]byte, 160)
	ulaw, _ := newCodec(PCMU)
	ulaw.Encode(plainPayload, frameIn)
	if bytes.Equal(wire[12:172], plainPayload) {
		t.Fatal("payload on the wire is the plain µ-law of the tone")
	}
	var h rtp.Header
	if _, err := peerContext(t, kb).DecryptRTP(nil, wire, &h); !errors.Is(err, srtp.ErrFailedToVerifyAuthTag) {
		t.Errorf("decrypt with the wrong key: err %v, want an auth tag failure", err)
	}
	plain, err := peerContext(t, ka).DecryptRTP(nil, wire, &h)
	if err != nil {
		t.Fatalf("the sender's key does not authenticate its packet: %v", err)
	}
	if !bytes.Equal(plain[12:], plainPayload) {
		t.Error("decrypted payload is not the µ-law of the tone")
	}
}

// Packets that fail authentication (plain RTP, a wrong key, a replay) never reach the
// jitter buffer or latch the stream.
func TestSRTPRejectsUnauthenticated(t *testing.T) {
	pool := newTestPool(t, 44100)
	key := srtpKey(t)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, SRTP: &SRTP{Local: srtpKey(t), Remote: key}})
	from := addrOf(udpPeer(t))
	payload := bytes.Repeat([]byte{0x55}, 160)
	now := time.Now()

	deliver(s, rtpPacket(t, 0, 1, 160, 7, payload), from, now) // plain RTP
	wrong, err := peerContext(t, srtpKey(t)).EncryptRTP(nil, rtpPacket(t, 0, 2, 320, 7, payload), nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(s, wrong, from, now)
	if st := s.Stats(); st.PacketsIn != 0 || st.Malformed != 2 || s.Remote().IsValid() {
		t.Fatalf("unauthenticated packets were taken: %+v, remote %v", st, s.Remote())
	}

	good, err := peerContext(t, key).EncryptRTP(nil, rtpPacket(t, 0, 3, 480, 7, payload), nil)
	if err != nil {
		t.Fatal(err)
	}
	replay := append([]byte(nil), good...)
	deliver(s, good, from, now)
	deliver(s, replay, from, now)
	if st := s.Stats(); st.PacketsIn != 1 || st.Malformed != 3 {
		t.Fatalf("after one good packet and its replay: %+v", st)
	}
	if s.Remote() != from {
		t.Errorf("authenticated packet did not latch: remote %v", s.Remote())
	}
}

// SRTCP: our reports are protected with our key, and the peer's are opened with theirs.
func TestSRTCPReports(t *testing.T) {
	pool := newTestPool(t, 44200)
	local, remote := srtpKey(t), srtpKey(t)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, SRTP: &SRTP{Local: local, Remote: remote}})
	out, err := s.buildReport(time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("@switchboard")) {
		t.Error("SRTCP report carries the CNAME in the clear")
	}
	plain, err := peerContext(t, local).DecryptRTCP(nil, out, nil)
	if err != nil {
		t.Fatalf("peer cannot open our SRTCP report: %v", err)
	}
	if _, err := rtcp.Unmarshal(plain); err != nil {
		t.Fatalf("decrypted report does not parse: %v", err)
	}

	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 9}})
	sec, err := peerContext(t, remote).EncryptRTCP(nil, rr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.openRTCP(append([]byte(nil), sec...)); !ok || !bytes.Equal(got, rr) {
		t.Errorf("openRTCP of the peer's SRTCP: ok=%v", ok)
	}
	if _, ok := s.openRTCP(rr); ok {
		t.Error("plain RTCP accepted on an SRTP stream")
	}
}

func TestSRTPKeyLength(t *testing.T) {
	pool := newTestPool(t, 44250)
	if _, err := pool.Open(StreamConfig{Codec: PCMU, SRTP: &SRTP{Local: make([]byte, 16), Remote: srtpKey(t)}}); !errors.Is(err, ErrSRTPKey) {
		t.Errorf("short key: err %v, want ErrSRTPKey", err)
	}
}

// srtpPath is one packet protected by one session and unprotected by another,
// in place in reused buffers, as the send and receive paths do it.
func srtpPath(tb testing.TB) func() {
	k := srtpKey(tb)
	tx, err := newSRTPSession(&SRTP{Local: k, Remote: k})
	if err != nil {
		tb.Fatal(err)
	}
	rx, err := newSRTPSession(&SRTP{Local: k, Remote: k})
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 12+160, 12+160+srtpOverhead)
	buf[0], buf[1] = 0x80, 0
	binary.BigEndian.PutUint32(buf[8:], 0x1234)
	payload := bytes.Repeat([]byte{0xd5}, 160)
	var seq uint16
	return func() {
		pkt := buf[:12+160]
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
		seq++
		copy(pkt[12:], payload)
		enc, err := tx.protectRTP(pkt)
		if err != nil || len(enc) != 182 {
			tb.Fatal(len(enc), err)
		}
		dec, err := rx.unprotectRTP(enc)
		if err != nil || len(dec) != 172 || dec[12] != 0xd5 {
			tb.Fatal(len(dec), err)
		}
	}
}

// BenchmarkSRTP is encrypt+decrypt of one 20 ms G.711 packet (AES_CM_128_HMAC_SHA1_80).
func BenchmarkSRTP(b *testing.B) {
	step := srtpPath(b)
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}

// BenchmarkSRTPWriteFrame is WriteFrame on an SRTP stream: encode, protect, sendto.
func BenchmarkSRTPWriteFrame(b *testing.B) {
	pool, err := NewPortPool(loopback, 44260, 44269)
	if err != nil {
		b.Fatal(err)
	}
	k := srtpKey(b)
	sink, err := pool.Open(StreamConfig{Codec: PCMU, SRTP: &SRTP{Local: k, Remote: k}})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	s, err := pool.Open(StreamConfig{Codec: PCMU, Remote: sink.LocalAddr(), SRTP: &SRTP{Local: k, Remote: k}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	frame := pcm.Tone(1000, 8000, 160, 0.5)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.WriteFrame(frame, false); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSRTPPathAllocs holds the zero-allocation claim for SRTP in the ordinary test run.
func TestSRTPPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race (sync.Pool drops items)")
	}
	step := srtpPath(t)
	for range 100 {
		step()
	}
	if a := testing.AllocsPerRun(500, step); a != 0 {
		t.Errorf("SRTP protect+unprotect: %v allocations per packet, want 0", a)
	}
}
