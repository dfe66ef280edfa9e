// Package yamlfile decodes hand-written YAML files through yaml.Node and
// reports every problem as "file:line:col: message", so one load shows them all.
//
// It is shared by the dialplan and the switchboard config; it imports no other
// package of this module.
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decoder walks a yaml.Node tree and collects every problem with its position.
// The zero value with File set is ready to use.
type Decoder struct {
	File string // name used in every Error

	// TildeHint, if set, is appended to Str's error for a bare ~ (YAML null),
	// for files where a value may plausibly start with ~.
	TildeHint string

	errs Errors
}

// Errorf records a problem at n's position.
func (d *Decoder) Errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.File, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
}

// ErrorAt records a problem at line:col (0 when unknown).
func (d *Decoder) ErrorAt(line, col int, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.File, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// Failed reports whether any problem has been recorded.
func (d *Decoder) Failed() bool { return len(d.errs) > 0 }

// Err returns the collected errors in file order as an Errors, or nil.
func (d *Decoder) Err() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return d.errs
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Document parses data as exactly one YAML document and returns its top node
// (alias-resolved), or nil when the file is empty or null. ok is false when
// any problem has been recorded.
func (d *Decoder) Document(data []byte) (n *yaml.Node, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		d.syntax(err)
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.Errorf(&extra, "a second YAML document; want exactly one")
	} else if !errors.Is(err, io.EOF) {
		d.syntax(err)
	}
	if len(doc.Content) == 0 {
		return nil, len(d.errs) == 0
	}
	n = Resolve(doc.Content[0])
	if IsNull(n) {
		return nil, len(d.errs) == 0
	}
	return n, len(d.errs) == 0
}

func (d *Decoder) syntax(err error) {
	msg := err.Error()
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.errs = append(d.errs, &Error{File: d.File, Line: line, Msg: "YAML syntax: " + m[2]})
		return
	}
	d.errs = append(d.errs, &Error{File: d.File, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")})
}

// Resolve follows an alias to its anchored node. Walks are driven by a
// schema a few levels deep, so a self-referencing anchor cannot loop.
func Resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// IsNull reports whether n is a null scalar ("key:", "~", "null").
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Field is one key of a mapping and its (alias-resolved) value.
type Field struct {
	Name       string
	Key, Value *yaml.Node
}

// Fields are a mapping's keys in file order.
type Fields []Field

// Get returns the field called name.
func (fs Fields) Get(name string) (Field, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Mapping returns n's keys, reporting duplicates and keys not in allowed
// (nil allows any key). want describes the expected value for the wrong-type
// message; ok is false only when n is not a mapping.
func (d *Decoder) Mapping(n *yaml.Node, what, want string, allowed []string) (Fields, bool) {
	n = Resolve(n)
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, "%s: want %s, got %s", what, want, Describe(n))
		return nil, false
	}
	var fs Fields
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := Resolve(n.Content[i]), Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.Errorf(k, "%s: a key must be a plain string, got %s; allowed: %s", what, Describe(k), strings.Join(allowed, ", "))
			continue
		}
		if prev, dup := fs.Get(k.Value); dup {
			d.Errorf(k, "%s: duplicate key %q (first at line %d)", what, k.Value, prev.Key.Line)
			continue
		}
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			d.Errorf(k, "%s: unknown key %q; allowed: %s", what, k.Value, strings.Join(allowed, ", "))
			continue
		}
		fs = append(fs, Field{Name: k.Value, Key: k, Value: v})
	}
	return fs, true
}

// Str returns a non-null scalar as written (so `to: 1800` is the string
// "1800"); null is an error, with TildeHint for a bare ~.
func (d *Decoder) Str(n *yaml.Node, what string) (string, bool) {
	n = Resolve(n)
	if n.Kind != yaml.ScalarNode || IsNull(n) {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.Value == "~" {
			hint = d.TildeHint
		}
		d.Errorf(n, "%s: want a string, got %s%s", what, Describe(n), hint)
		return "", false
	}
	return n.Value, true
}

// StrOrEmpty returns a scalar as written (so `user_agent: 1` is "1"); null,
// as in "advertise_ip:", is the empty string.
func (d *Decoder) StrOrEmpty(n *yaml.Node, what string) (string, bool) {
	n = Resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.Errorf(n, "%s: want a string, got %s", what, Describe(n))
		return "", false
	}
	if IsNull(n) {
		return "", true
	}
	return n.Value, true
}

// Integer returns an !!int scalar; want describes it for the wrong-type message.
func (d *Decoder) Integer(n *yaml.Node, what, want string) (int, bool) {
	n = Resolve(n)
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		d.Errorf(n, "%s: want %s, got %s", what, want, Describe(n))
		return 0, false
	}
	return v, true
}

// Describe names a node's type and value for "got ..." in messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "nothing"
}
