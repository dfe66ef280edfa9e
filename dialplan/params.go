package dialplan

import (
	"strings"
	"text/template"
)

// CallData is what a params template sees: {{.From}}, {{.To}}, {{.CallID}},
// {{.Route}} and {{.Header "X-Name"}} (a SIP header of the INVITE).
type CallData struct {
	From, To, CallID, Route string
	Headers                 func(name string) string // nil: no headers
}

// Header returns a header of the call's INVITE, "" if absent.
func (c CallData) Header(name string) string {
	if c.Headers == nil {
		return ""
	}
	return c.Headers(name)
}

// Params are an agent target's per-call values: Go templates, parsed and
// checked at load, rendered for each call, and the SIP headers (headers:)
// handed to the agent under their own names.
type Params struct {
	names   []string
	tmpls   []*template.Template
	headers []string
}

// Headers lists the SIP headers passed to the agent, in file order.
func (p *Params) Headers() []string {
	if p == nil {
		return nil
	}
	return append([]string(nil), p.headers...)
}

// Names lists the params in file order.
func (p *Params) Names() []string {
	if p == nil {
		return nil
	}
	return append([]string(nil), p.names...)
}

// Render executes every template for one call; nil Params render to nil.
func (p *Params) Render(c CallData) (map[string]string, error) {
	if p == nil {
		return nil, nil
	}
	out := make(map[string]string, len(p.names))
	var b strings.Builder
	for i, t := range p.tmpls {
		b.Reset()
		if err := t.Execute(&b, c); err != nil {
			return nil, err
		}
		out[p.names[i]] = b.String()
	}
	for _, h := range p.headers {
		if v := c.Header(h); v != "" { // an absent header is left out, not sent empty
			out[h] = v
		}
	}
	return out, nil
}

// parseParam compiles one template and runs it once on sample data, so a
// misspelt field ({{.Frm}}) fails at load rather than on a call.
func parseParam(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if err := t.Execute(&strings.Builder{}, CallData{}); err != nil {
		return nil, err
	}
	return t, nil
}
