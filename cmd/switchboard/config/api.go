package config

import (
	"os"
	"regexp"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/dialplan/yamlfile"
)

// API is the admin HTTP API (/v1, /debug/pprof) on http.listen.
type API struct {
	TokenEnv string // environment variable holding the bearer token
	Token    string // its value at load; "" leaves the API closed (401)
}

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// api reads the token at load: a named variable that is unset is a config error,
// not an API that silently refuses everyone.
func (d *decoder) api(a *API, n *yaml.Node) {
	for _, f := range d.section(n, "api", []string{"token_env"}) {
		v, ok := d.StrOrEmpty(f.Value, "api.token_env")
		if !ok || v == "" {
			continue
		}
		if !envName.MatchString(v) {
			d.Errorf(yamlfile.Resolve(f.Value), "api.token_env: %q is not an environment variable name; want letters, digits and _ (e.g. SWITCHBOARD_API_TOKEN)", v)
			continue
		}
		a.TokenEnv = v
		a.Token = os.Getenv(v)
		if a.Token == "" {
			d.Errorf(f.Value, "api.token_env: environment variable %s is unset or empty; set it to the API's bearer token", v)
		}
	}
}
