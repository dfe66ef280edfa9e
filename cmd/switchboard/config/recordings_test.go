package config

import (
	"strings"
	"testing"
)

func TestRecordingsDir(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"", "/etc/sb/recordings"},
		{"recordings: { dir: calls }\n", "/etc/sb/calls"},
		{"recordings:\n  dir: /var/spool/sb\n", "/var/spool/sb"},
		{"recordings:\n", "/etc/sb/recordings"},
	} {
		cfg, err := Parse("c.yaml", []byte(c.yaml), "/etc/sb")
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.yaml, err)
		}
		if cfg.Recordings.Dir != c.want {
			t.Errorf("Parse(%q): recordings dir %q, want %q", c.yaml, cfg.Recordings.Dir, c.want)
		}
	}
	for _, c := range []struct{ yaml, want string }{
		{"recordings: { dir: \"\" }\n", "c.yaml:1:20: recordings.dir: empty"},
		{"recordings: { path: x }\n", "c.yaml:1:15: recordings: unknown key \"path\""},
		{"recordings: { dir: [a] }\n", "c.yaml:1:20: recordings.dir: want a string"},
	} {
		_, err := Parse("c.yaml", []byte(c.yaml), "/etc/sb")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}
