package sip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// A key from RFC 4568 §6.2's example: 40 base64 characters, 30 bytes.
const rfcKey = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"

func TestParseCrypto(t *testing.T) {
	tests := []struct {
		v   string
		ok  bool
		tag int
	}{
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, true, 1},
		{"2 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20", true, 2},      // lifetime
		{"3 aes_cm_128_hmac_sha1_80 inline:" + rfcKey + "|2^31", true, 3},      // suite names are case-insensitive
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20|1:4", false, 0}, // MKI
		{"1 AES_CM_128_HMAC_SHA1_32 inline:" + rfcKey, false, 0},
		{"1 AEAD_AES_256_GCM inline:" + rfcKey, false, 0},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + " UNENCRYPTED_SRTP", false, 0},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + ";inline:" + rfcKey, false, 0},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=", false, 0}, // 5 bytes
		{"1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!", false, 0},
		{"x AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, false, 0},
		{"1 AES_CM_128_HMAC_SHA1_80 " + rfcKey, false, 0},
		{"", false, 0},
	}
	want, _ := base64.StdEncoding.DecodeString(rfcKey)
	for _, tt := range tests {
		c, ok := parseCrypto(tt.v)
		if ok != tt.ok {
			t.Errorf("parseCrypto(%q) ok = %v, want %v", tt.v, ok, tt.ok)
			continue
		}
		if ok && (c.tag != tt.tag || !bytes.Equal(c.key, want)) {
			t.Errorf("parseCrypto(%q) = tag %d key %x", tt.v, c.tag, c.key)
		}
	}
}

func TestNegotiateSRTP(t *testing.T) {
	crypto := "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey
	only32 := "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + rfcKey
	plain := sdpOffer("m=audio 4000 RTP/AVP 0")
	savp := sdpOffer("m=audio 4000 RTP/SAVP 0", "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:"+rfcKey, crypto)
	savpNoKey := sdpOffer("m=audio 4000 RTP/SAVP 0")
	savpOnly32 := sdpOffer("m=audio 4000 RTP/SAVP 0", only32)
	bestEffort := sdpOffer("m=audio 4000 RTP/AVP 0", crypto)
	tests := []struct {
		name   string
		offer  []byte
		mode   string
		secure bool
		err    bool
	}{
		{"plain, optional", plain, SRTPOptional, false, false},
		{"plain, off", plain, SRTPOff, false, false},
		{"plain, required: 488", plain, SRTPRequired, false, true},
		{"SAVP, optional", savp, SRTPOptional, true, false},
		{"SAVP, required", savp, SRTPRequired, true, false},
		{"SAVP, off: 488", savp, SRTPOff, false, true},
		{"SAVP without a=crypto", savpNoKey, SRTPOptional, false, true},
		{"SAVP with only a suite we lack", savpOnly32, SRTPRequired, false, true},
		{"best-effort AVP with a=crypto, optional", bestEffort, SRTPOptional, true, false},
		{"best-effort AVP with a=crypto, required", bestEffort, SRTPRequired, true, false},
		{"best-effort AVP with a=crypto, off", bestEffort, SRTPOff, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseSDP(tt.offer)
			if err != nil {
				t.Fatal(err)
			}
			m, err := negotiate(o, []string{"PCMU"})
			if err != nil {
				t.Fatal(err)
			}
			m.SRTP, err = negotiateSRTP(o, tt.mode)
			if tt.err {
				if !errors.Is(err, errSRTP) {
					t.Fatalf("err = %v, want errSRTP", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (m.SRTP != nil) != tt.secure {
				t.Fatalf("SRTP = %+v, want secure %v", m.SRTP, tt.secure)
			}
			ans, err := answerSDP(o, m, m.Remote, m.Remote.Addr(), 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			a := string(ans)
			if !tt.secure {
				if strings.Contains(a, "a=crypto") || !strings.Contains(a, "RTP/AVP 0") {
					t.Fatalf("plain answer:\n%s", a)
				}
				return
			}
			remote, _ := base64.StdEncoding.DecodeString(rfcKey)
			if !bytes.Equal(m.SRTP.Remote, remote) || len(m.SRTP.Local) != 30 || bytes.Equal(m.SRTP.Local, remote) {
				t.Fatalf("keys: %+v", m.SRTP)
			}
			wantLine := "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(m.SRTP.Local) + "\r\n"
			if !strings.Contains(a, wantLine) || strings.Count(a, "a=crypto") != 1 {
				t.Fatalf("answer lacks our key under the offer's tag 7:\n%s", a)
			}
			if !strings.Contains(a, "m=audio 4000 "+o.proto+" 0") {
				t.Fatalf("answer's profile differs from the offer's %s:\n%s", o.proto, a)
			}
			// Two calls never share a key.
			again, _ := negotiateSRTP(o, tt.mode)
			if bytes.Equal(again.Local, m.SRTP.Local) {
				t.Fatal("the same local key twice")
			}
		})
	}
}

func TestRenegotiateSRTP(t *testing.T) {
	remote, _ := base64.StdEncoding.DecodeString(rfcKey)
	cur := &SRTP{Suite: sdesSuite, Local: bytes.Repeat([]byte{1}, 30), Remote: remote}
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 30))
	tests := []struct {
		name  string
		offer []byte
		cur   *SRTP
		want  *SRTP
		err   bool
	}{
		{"hold keeps the keys", sdpOffer("m=audio 4000 RTP/SAVP 0", "a=sendonly", "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"+rfcKey), cur, cur, false},
		{"new key refused", sdpOffer("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+other), cur, nil, true},
		{"downgrade to plain refused", sdpOffer("m=audio 4000 RTP/AVP 0"), cur, nil, true},
		{"plain call stays plain", sdpOffer("m=audio 4000 RTP/AVP 0"), nil, nil, false},
		{"plain call cannot start SRTP", sdpOffer("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+rfcKey), nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseSDP(tt.offer)
			if err != nil {
				t.Fatal(err)
			}
			got, err := renegotiateSRTP(o, tt.cur)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("got %+v, %v", got, err)
			}
			if got != nil {
				ans, _ := answerSDP(o, Media{Codec: staticCodecs[0], SRTP: got}, o.remote, o.remote.Addr(), 1, 2)
				if !strings.Contains(string(ans), "a=crypto:2 ") {
					t.Fatalf("re-answer does not use the re-offer's tag:\n%s", ans)
				}
			}
		})
	}
}

func TestSRTPMode(t *testing.T) {
	for in, want := range map[string]string{"": "optional", "OFF": "off", "required": "required", "Optional": "optional"} {
		if got, err := srtpMode(in); err != nil || got != want {
			t.Errorf("srtpMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := srtpMode("mandatory"); err == nil {
		t.Error("srtpMode accepted mandatory")
	}
}
