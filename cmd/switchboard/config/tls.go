package config

import (
	"crypto/tls"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// srtpModes are the allowed sip.srtp and sip.listen[].srtp values (SDES, RFC 4568).
var srtpModes = []string{"off", "optional", "required"}

// listenSecurity reads a listen entry's cert, key and srtp: a tls listener needs a
// certificate and key that load, resolved against the config file's directory.
func (d *decoder) listenSecurity(l *Listen, fs yamlfile.Fields, item *yaml.Node) bool {
	ok := true
	path := func(name string) string {
		f, has := fs.Get(name)
		if !has {
			return ""
		}
		if l.Transport != "tls" {
			d.Errorf(f.Value, "sip.listen.%s: only a tls listener takes a certificate, this one is %s", name, l.Transport)
			ok = false
			return ""
		}
		v, good := d.StrOrEmpty(f.Value, "sip.listen."+name)
		if !good || v == "" {
			if good {
				d.Errorf(f.Value, "sip.listen.%s: empty; want a PEM file path, relative to this file's directory", name)
			}
			ok = false
			return ""
		}
		if !filepath.IsAbs(v) {
			v = filepath.Join(d.dir, v)
		}
		return v
	}
	l.Cert, l.Key = path("cert"), path("key")
	if f, has := fs.Get("srtp"); has {
		if l.SRTP, has = d.oneOf(f.Value, "sip.listen.srtp", srtpModes); !has {
			ok = false
		}
	}
	if l.Transport != "tls" || !ok {
		return ok
	}
	if l.Cert == "" || l.Key == "" {
		d.Errorf(item, "sip.listen: a tls listener needs cert and key (PEM files, relative to this file's directory)")
		return false
	}
	if _, err := tls.LoadX509KeyPair(l.Cert, l.Key); err != nil {
		f, _ := fs.Get("cert")
		d.Errorf(f.Value, "sip.listen.cert: %s", strings.TrimPrefix(err.Error(), "tls: "))
		return false
	}
	return true
}
