package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// cdr decodes the call-record store; postgres has no usable default dsn, so
// choosing it without one is an error.
func (d *decoder) cdr(c *CDR, n *yaml.Node) {
	var dsnSet bool
	var driverNode, dsnNode *yaml.Node
	for _, f := range d.section(n, "cdr", []string{"driver", "dsn", "node"}) {
		switch f.Name {
		case "driver":
			if v, ok := d.oneOf(f.Value, "cdr.driver", cdrDrivers); ok {
				c.Driver, driverNode = v, f.Value
			}
		case "dsn":
			v, ok := d.StrOrEmpty(f.Value, "cdr.dsn")
			if !ok {
				dsnSet = true // reported; don't also ask for one
				continue
			}
			if v == "" {
				d.Errorf(f.Value, "cdr.dsn: empty; want a SQLite file path (relative to this file's directory) or a PostgreSQL URL such as postgres://user:pass@host:5432/db")
				dsnSet = true
				continue
			}
			c.DSN, dsnSet, dsnNode = v, true, f.Value
		case "node":
			if v, ok := d.StrOrEmpty(f.Value, "cdr.node"); ok {
				c.Node = v
			}
		}
	}
	if c.Driver == "sqlite" && dsnNode != nil && strings.ContainsAny(c.DSN, "?#") {
		d.Errorf(dsnNode, "cdr.dsn: %q: a SQLite file path may not contain ? or #", c.DSN)
	}
	if c.Driver == "postgres" && !dsnSet && driverNode != nil {
		d.Errorf(driverNode, "cdr: driver postgres needs dsn: a PostgreSQL URL such as postgres://user:pass@host:5432/db")
	}
}
