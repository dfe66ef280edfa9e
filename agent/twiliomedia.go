package agent

import "bytes"

// twilioMediaPayload finds the base64 payload of a bot's media message in
// msg without decoding it into values: payload is a sub-slice of msg. ok is
// true only when msg is valid JSON that encoding/json would read into
// twilioIn as event "media" with exactly this payload; anything else (other
// events, escapes in the parts we read, keys that differ only in case,
// duplicate keys, a mark field, deep nesting) is left to encoding/json.
func twilioMediaPayload(msg []byte) (payload []byte, ok bool) {
	p := jsonScan{b: msg}
	if !p.byte('{') || p.byte('}') {
		return nil, false
	}
	var event []byte
	var haveEvent, haveMedia bool
	for {
		key, ok := p.plainString()
		if !ok || !p.byte(':') {
			return nil, false
		}
		switch string(key) {
		case "event":
			if haveEvent {
				return nil, false
			}
			haveEvent = true
			if event, ok = p.plainString(); !ok {
				return nil, false
			}
		case "media":
			if haveMedia {
				return nil, false
			}
			haveMedia = true
			if payload, ok = p.mediaPayload(); !ok {
				return nil, false
			}
		default:
			if foldsTo(key, "event", "media", "mark") || !p.skipValue(0) {
				return nil, false
			}
		}
		if p.byte(',') {
			continue
		}
		if !p.byte('}') {
			return nil, false
		}
		break
	}
	p.space()
	if p.i != len(msg) || string(event) != "media" || payload == nil {
		return nil, false
	}
	return payload, true
}

// mediaPayload reads the media object: its payload string, other fields skipped.
func (p *jsonScan) mediaPayload() (payload []byte, ok bool) {
	if !p.byte('{') {
		return nil, false
	}
	if p.byte('}') {
		return nil, false // no payload: encoding/json's nil, left to it
	}
	for {
		key, ok := p.plainString()
		if !ok || !p.byte(':') {
			return nil, false
		}
		switch {
		case string(key) == "payload":
			if payload != nil {
				return nil, false
			}
			if payload, ok = p.plainString(); !ok {
				return nil, false
			}
		case foldsTo(key, "payload") || !p.skipValue(1):
			return nil, false
		}
		if p.byte(',') {
			continue
		}
		if !p.byte('}') {
			return nil, false
		}
		return payload, payload != nil
	}
}

// foldsTo: key might match one of names the way encoding/json matches
// field names (case-insensitively, with Unicode folding), so only
// encoding/json may decide what it means.
func foldsTo(key []byte, names ...string) bool {
	for _, c := range key {
		if c >= 0x80 {
			return true
		}
	}
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}

// jsonMaxDepth bounds the nesting skipValue follows before giving up.
const jsonMaxDepth = 32

// jsonScan walks JSON text in place, checking the grammar as strictly as
// encoding/json does.
type jsonScan struct {
	b []byte
	i int
}

func (p *jsonScan) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c (after white space) if it is next.
func (p *jsonScan) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// plainString reads a string without escapes and returns its bytes.
func (p *jsonScan) plainString() ([]byte, bool) {
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return p.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// skipString skips a string, escapes included.
func (p *jsonScan) skipString() bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(p.b) {
				return false
			}
			switch p.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(p.b) {
					return false
				}
				for _, h := range p.b[j+1 : j+5] {
					if !isHex(h) {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipNumber skips -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonScan) skipNumber() bool {
	b, i := p.b, p.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	p.i = i
	return true
}

// skipValue skips one value of any kind.
func (p *jsonScan) skipValue(depth int) bool {
	p.space()
	if p.i >= len(p.b) || depth > jsonMaxDepth {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.skipString()
	case c == '{':
		p.i++
		if p.byte('}') {
			return true
		}
		for {
			p.space()
			if !p.skipString() || !p.byte(':') || !p.skipValue(depth+1) {
				return false
			}
			if p.byte(',') {
				continue
			}
			return p.byte('}')
		}
	case c == '[':
		p.i++
		if p.byte(']') {
			return true
		}
		for {
			if !p.skipValue(depth + 1) {
				return false
			}
			if p.byte(',') {
				continue
			}
			return p.byte(']')
		}
	case c == '-' || isDigit(c):
		return p.skipNumber()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
			p.i += len(lit)
			return true
		}
	}
	return false
}
