package dialplan

import (
	"regexp"
	"strings"
)

// Normalize is the form in which to:, from: and their patterns are compared.
//
// A phone number — an optional leading +, then digits and the separators
// space ( ) - . — becomes its digits alone, with the international prefix
// (+ or 00) dropped; user parameters after ";" are ignored. So
// "+1 (800) 555-0100", "0018005550100" and "18005550100" all become
// "18005550100". A national number keeps its digits as dialled ("030 1234"
// is "0301234"): no country is assumed. Anything else (a name such as "echo")
// is returned unchanged and compared as written, case-sensitively.
func Normalize(user string) string {
	num, _, _ := strings.Cut(user, ";")
	if d, ok := digits(num); ok {
		return d
	}
	return user
}

// digits returns a phone number's digits without the international prefix,
// or false when s is not a phone number.
func digits(s string) (string, bool) {
	s = strings.TrimSpace(s)
	intl := strings.HasPrefix(s, "+")
	if intl {
		s = s[1:]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == ' ' || c == '(' || c == ')' || c == '-' || c == '.':
		default:
			return "", false
		}
	}
	d := b.String()
	if d == "" {
		return "", false
	}
	if !intl && len(d) > 2 && strings.HasPrefix(d, "00") {
		d = d[2:]
	}
	return d, true
}

// Dialable is a number in the form a trunk is handed: "+" and digits for an
// international number (written with + or 00), the digits otherwise; false
// when s is not a phone number.
func Dialable(s string) (string, bool) {
	t := strings.TrimSpace(s)
	d, ok := digits(t)
	if !ok {
		return "", false
	}
	if strings.HasPrefix(t, "+") || strings.HasPrefix(t, "00") {
		return "+" + d, true
	}
	return d, true
}

// matcher compares a normalised call value with a pattern: exact, prefix
// (written with a trailing *) or a regular expression (written ~RE); a nil
// matcher matches anything. to:/from: patterns are stored normalised.
type matcher struct {
	exact  string
	prefix string
	re     *regexp.Regexp
	isPre  bool
}
