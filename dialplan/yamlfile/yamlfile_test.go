package yamlfile

import (
	"errors"
	"testing"
)

func TestNullStrings(t *testing.T) {
	d := &Decoder{File: "f.yaml", TildeHint: " (hint)"}
	root, ok := d.Document([]byte("a: ~\nb:\nc: 12\n"))
	if !ok || root == nil {
		t.Fatalf("Document: ok=%v root=%v err=%v", ok, root, d.Err())
	}
	fs, _ := d.Mapping(root, "top", "a mapping", []string{"a", "b", "c"})
	a, _ := fs.Get("a")
	b, _ := fs.Get("b")
	c, _ := fs.Get("c")
	if v, ok := d.StrOrEmpty(a.Value, "a"); !ok || v != "" {
		t.Errorf("StrOrEmpty(~) = %q, %v; want \"\", true", v, ok)
	}
	if v, ok := d.Str(c.Value, "c"); !ok || v != "12" {
		t.Errorf("Str(12) = %q, %v; want \"12\", true", v, ok)
	}
	if d.Failed() {
		t.Fatalf("unexpected errors: %v", d.Err())
	}
	d.Str(b.Value, "b")
	d.Str(a.Value, "a")
	err := d.Err()
	want := "f.yaml:1:4: a: want a string, got null (hint)\nf.yaml:2:3: b: want a string, got null"
	if err == nil || err.Error() != want {
		t.Fatalf("Err() = %v; want\n%s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 1 {
		t.Errorf("errors.As(*Error) = %v; want the line-1 error", e)
	}
}
