package dialplan

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that a failure is always an Errors
// naming the file, and that a parsed plan routes without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(testPlan))
	f.Add([]byte("default: {target: {type: echo}}"))
	f.Add([]byte("routes: &r [*r]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			if p != nil {
				t.Fatal("plan and error both returned")
			}
			var list Errors
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") && !strings.HasPrefix(line, "fuzz.yaml: ") {
					t.Fatalf("error line without the file name: %q", line)
				}
			}
			return
		}
		for _, c := range []CallInfo{{}, {To: "echo"}, {To: "+18005551234", From: "anonymous"}} {
			if r, ok := p.Route(c); ok != (r != nil) {
				t.Fatalf("Route(%+v) = %v, %v", c, r, ok)
			}
		}
	})
}
