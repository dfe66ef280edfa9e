package sip

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SDES (RFC 4568): SRTP keys carried in SDP a=crypto lines. Each side sends its own
// master key; we encrypt with ours and decrypt with the peer's.

// SRTP is the keying a call's media negotiated; nil in Media means plain RTP.
type SRTP struct {
	Suite  string // "AES_CM_128_HMAC_SHA1_80"
	Local  []byte // our master key||salt (30 bytes), sent in our a=crypto
	Remote []byte // the peer's, from its a=crypto
}

// SRTP modes, per listener or for the server.
const (
	SRTPOff      = "off"      // RTP/SAVP offers get 488; a=crypto on RTP/AVP is ignored
	SRTPOptional = "optional" // SRTP when offered, plain RTP otherwise
	SRTPRequired = "required" // offers without a usable a=crypto get 488
)

// sdesSuite is the one crypto suite we speak (RFC 4568 §6.2.1).
const sdesSuite = "AES_CM_128_HMAC_SHA1_80"

// sdesKeyLen is its master key (16) and salt (14).
const sdesKeyLen = 30

var errSRTP = errors.New("SRTP not acceptable")

// sdesCrypto is one a=crypto line we could use.
type sdesCrypto struct {
	tag   int
	suite string
	key   []byte // key||salt
}

// parseCrypto reads "tag suite inline:KEY[|lifetime][|MKI:len] [session-params]".
// Lines we cannot honour (other suites, MKI, several keys, session parameters) are
// skipped rather than misread.
func parseCrypto(v string) (sdesCrypto, bool) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return sdesCrypto{}, false // session parameters (e.g. UNENCRYPTED_SRTP, KDR) we do not implement
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 || !strings.EqualFold(f[1], sdesSuite) {
		return sdesCrypto{}, false
	}
	params, ok := strings.CutPrefix(f[2], "inline:")
	if !ok || strings.Contains(params, ";") {
		return sdesCrypto{}, false
	}
	parts := strings.Split(params, "|")
	for _, p := range parts[1:] {
		if strings.Contains(p, ":") {
			return sdesCrypto{}, false // MKI
		}
	}
	key, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(parts[0])
	}
	if err != nil || len(key) != sdesKeyLen {
		return sdesCrypto{}, false
	}
	return sdesCrypto{tag: tag, suite: sdesSuite, key: key}, true
}

// srtpMode normalises a configured mode; "" is optional.
func srtpMode(m string) (string, error) {
	switch strings.ToLower(m) {
	case "", SRTPOptional:
		return SRTPOptional, nil
	case SRTPOff, SRTPRequired:
		return strings.ToLower(m), nil
	}
	return "", fmt.Errorf("srtp %q not supported (off, optional, required)", m)
}

// negotiateSRTP applies mode to an initial offer: the keys to use, or nil for plain RTP.
func negotiateSRTP(o *offer, mode string) (*SRTP, error) {
	secure := o.proto == "RTP/SAVP"
	switch {
	case mode == SRTPOff && secure:
		return nil, fmt.Errorf("%w: RTP/SAVP offered, SRTP is off here", errSRTP)
	case mode == SRTPOff:
		return nil, nil
	case len(o.cryptos) == 0 && (secure || mode == SRTPRequired):
		return nil, fmt.Errorf("%w: SRTP required, offer has no a=crypto %s", errSRTP, sdesSuite)
	case len(o.cryptos) == 0:
		return nil, nil
	}
	// A crypto line on RTP/AVP is best-effort SRTP: taken when we can.
	local := make([]byte, sdesKeyLen)
	if _, err := rand.Read(local); err != nil {
		return nil, fmt.Errorf("sip: SRTP key: %w", err)
	}
	return &SRTP{Suite: sdesSuite, Local: local, Remote: o.cryptos[0].key}, nil
}

// renegotiateSRTP checks a re-offer against the keys in use: media cannot be re-keyed
// mid-call, and a call that started with SRTP never falls back to plain RTP.
func renegotiateSRTP(o *offer, cur *SRTP) (*SRTP, error) {
	if cur == nil {
		if o.proto == "RTP/SAVP" {
			return nil, fmt.Errorf("%w: the call started without SRTP", errSRTP)
		}
		return nil, nil
	}
	for _, c := range o.cryptos {
		if string(c.key) == string(cur.Remote) {
			return cur, nil
		}
	}
	return nil, fmt.Errorf("%w: re-offer changes or drops the SRTP key", errSRTP)
}

// cryptoAttr is our a=crypto line answering the offer's line that carries s.Remote.
func (o *offer) cryptoAttr(s *SRTP) string {
	tag := 1
	for _, c := range o.cryptos {
		if string(c.key) == string(s.Remote) {
			tag = c.tag
			break
		}
	}
	return fmt.Sprintf("%d %s inline:%s", tag, s.Suite, base64.StdEncoding.EncodeToString(s.Local))
}
