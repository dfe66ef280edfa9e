package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// defaultNonceTTL is how long a nonce we issue stays valid; past it a correct answer gets
// a fresh challenge with stale=true (RFC 2617 3.2.1), so the caller retries without asking anyone.
const defaultNonceTTL = 5 * time.Minute

// nonces issues and checks stateless digest nonces: issue time plus an HMAC of it, so any
// nonce we did not make, or made too long ago, is known without keeping a table.
type nonces struct {
	key [32]byte
	ttl time.Duration
	now func() time.Time
}

func newNonces(ttl time.Duration) *nonces {
	n := &nonces{ttl: ttl, now: time.Now}
	if n.ttl <= 0 {
		n.ttl = defaultNonceTTL
	}
	_, _ = rand.Read(n.key[:])
	return n
}

func (n *nonces) issue() string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(n.now().UnixNano()))
	copy(b[8:], n.mac(b[:8]))
	return hex.EncodeToString(b[:])
}

func (n *nonces) mac(ts []byte) []byte {
	h := hmac.New(sha256.New, n.key[:])
	h.Write(ts)
	return h.Sum(nil)[:16]
}

// check says whether nonce is ours (valid) and, if so, whether it has expired (stale).
func (n *nonces) check(nonce string) (valid, stale bool) {
	b, err := hex.DecodeString(nonce)
	if err != nil || len(b) != 24 || !hmac.Equal(b[8:], n.mac(b[:8])) {
		return false, false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	age := n.now().Sub(issued)
	return true, age > n.ttl || age < -time.Minute
}

// authResult is what a request's credentials prove.
type authResult int

const (
	authMissing authResult = iota // no credentials for our realm: challenge
	authStale                     // right password, expired nonce: challenge with stale=true
	authFailed                    // wrong user, password or a nonce we never issued
	authOK
)

// verifyDigest checks the Authorization (or Proxy-Authorization) of req against the trunks'
// credentials for realm and returns the trunk whose user answered.
func (n *nonces) verifyDigest(req *sip.Request, realm string, users map[string]*InboundTrunk) (authResult, *InboundTrunk) {
	var creds *digest.Credentials
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		for _, h := range req.GetHeaders(name) {
			c, err := digest.ParseCredentials(h.Value())
			if err == nil && c.Realm == realm {
				creds = c
				break
			}
		}
		if creds != nil {
			break
		}
	}
	if creds == nil {
		return authMissing, nil
	}
	tr, ok := users[creds.Username]
	if !ok {
		return authFailed, nil
	}
	valid, stale := n.check(creds.Nonce)
	if !valid {
		return authFailed, nil
	}
	switch strings.ToUpper(creds.Algorithm) {
	case "", "MD5":
	default:
		return authFailed, nil
	}
	chal := &digest.Challenge{Realm: realm, Nonce: creds.Nonce, Algorithm: creds.Algorithm, Opaque: creds.Opaque}
	if creds.QOP != "" {
		if creds.QOP != "auth" {
			return authFailed, nil
		}
		chal.QOP = []string{"auth"}
	}
	want, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: creds.URI,
		Username: tr.User, Password: tr.Password, Cnonce: creds.Cnonce, Count: creds.Nc})
	if err != nil || subtle.ConstantTimeCompare([]byte(want.Response), []byte(strings.ToLower(creds.Response))) != 1 {
		return authFailed, nil
	}
	if stale {
		return authStale, tr
	}
	return authOK, tr
}

// challenge is the WWW-Authenticate header of a 401 for realm.
func (n *nonces) challenge(realm string, stale bool) sip.Header {
	c := digest.Challenge{Realm: realm, Nonce: n.issue(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return sip.NewHeader("WWW-Authenticate", c.String())
}

// Credentials answer a carrier's 401 or 407.
type Credentials struct {
	User, Password string
}

// authorize adds the answer to res's challenge (WWW-Authenticate for 401, Proxy-Authenticate
// for 407) to req, replacing an earlier one, and bumps the CSeq for the new transaction.
func authorize(req *sip.Request, res *sip.Response, cr Credentials) error {
	chName, hdrName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == sip.StatusProxyAuthRequired {
		chName, hdrName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(chName)
	if h == nil {
		return fmt.Errorf("sip: %d without %s", res.StatusCode, chName)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		return fmt.Errorf("sip: %s: %w", chName, err)
	}
	chal.Algorithm = strings.ToUpper(chal.Algorithm)
	cred, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: req.Recipient.Addr(),
		Username: cr.User, Password: cr.Password})
	if err != nil {
		return fmt.Errorf("sip: answer %s: %w", chName, err)
	}
	req.RemoveHeader(hdrName)
	req.AppendHeader(sip.NewHeader(hdrName, cred.String()))
	req.CSeq().SeqNo++
	return nil
}
