package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-voip/switchboard/bridge"
	"github.com/switchboard-voip/switchboard/cmd/switchboard/config"
	"github.com/switchboard-voip/switchboard/dialplan"
)

// composeFile is the part of docker-compose.yml the README documents.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   []string          `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// readmeServices parses the README's "Docker Compose" table: service → image, ports.
func readmeServices(t *testing.T) map[string][2]string {
	b, err := os.ReadFile("../../README.md")
	must(t, err)
	_, sec, ok := strings.Cut(string(b), "## Docker Compose")
	if !ok {
		t.Fatal("README.md has no Docker Compose section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	out := map[string][2]string{}
	for _, l := range strings.Split(sec, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		out[name] = [2]string{strings.ReplaceAll(strings.TrimSpace(cells[2]), "`", ""), strings.TrimSpace(cells[3])}
	}
	return out
}

// docker compose cannot run here: the file is parsed and held to what README.md
// documents — services, images, published ports, mounted files that exist, the
// scrape target — and the configs it mounts load with our own loaders.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	must(t, err)
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(false)
	must(t, dec.Decode(&c))

	doc := readmeServices(t)
	var names []string
	for n := range c.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"grafana", "livekit", "prometheus", "switchboard"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for name, svc := range c.Services {
		d, ok := doc[name]
		if !ok {
			t.Errorf("service %s is not in README.md's table", name)
			continue
		}
		if name == "switchboard" {
			b, _ := svc.Build.(map[string]any)
			df, _ := b["dockerfile"].(string)
			if df == "" || d[0] != "built from "+df {
				t.Errorf("switchboard: build %v, README image %q", svc.Build, d[0])
			}
			if _, err := os.Stat(filepath.Join("../..", df)); err != nil {
				t.Error(err)
			}
		} else if svc.Image != d[0] {
			t.Errorf("%s: image %q, README says %q", name, svc.Image, d[0])
		}
		var ports []string
		for _, p := range svc.Ports {
			host, container, ok := strings.Cut(p, ":")
			if !ok || strings.SplitN(container, "/", 2)[0] != host {
				t.Errorf("%s: port %q should publish the same port on the host", name, p)
			}
			ports = append(ports, container)
		}
		if got := strings.Join(ports, ", "); got != d[1] {
			t.Errorf("%s: ports %q, README says %q", name, got, d[1])
		}
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("../..", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s uses volume %q that is not declared", name, src)
			}
		}
	}

	// Prometheus scrapes the gateway's /metrics on the port compose publishes.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err = os.ReadFile("../../configs/prometheus.yml")
	must(t, err)
	must(t, yaml.Unmarshal(b, &prom))
	if len(prom.ScrapeConfigs) != 1 || prom.ScrapeConfigs[0].MetricsPath != "/metrics" ||
		len(prom.ScrapeConfigs[0].StaticConfigs) != 1 || !slices.Equal(prom.ScrapeConfigs[0].StaticConfigs[0].Targets, []string{"switchboard:8080"}) {
		t.Errorf("prometheus scrape config: %+v", prom)
	}
	readme, _ := os.ReadFile("../../README.md")
	if !strings.Contains(string(readme), "switchboard:8080/metrics") {
		t.Error("README.md does not name the scrape target switchboard:8080/metrics")
	}

	// The gateway's compose config and dialplan load, and agree with the published ports.
	t.Setenv("SWITCHBOARD_API_TOKEN", "x")
	cfg, err := config.Load("../../configs/compose/switchboard.yaml")
	must(t, err)
	if cfg.HTTP.Listen != "0.0.0.0:8080" || cfg.RTP.PortMin != 10000 || cfg.RTP.PortMax != 10099 ||
		cfg.SIP.Listen[0].Addr.Port() != 5060 || cfg.API.TokenEnv != "SWITCHBOARD_API_TOKEN" {
		t.Errorf("compose gateway config: http %s rtp %d-%d sip %v api %+v", cfg.HTTP.Listen, cfg.RTP.PortMin, cfg.RTP.PortMax, cfg.SIP.Listen, cfg.API)
	}
	if env := c.Services["switchboard"].Environment; env["SWITCHBOARD_API_TOKEN"] == "" || env["LIVEKIT_API_SECRET"] == "" {
		t.Errorf("switchboard environment %v lacks the API token or the LiveKit secret", env)
	}
	dp, err := dialplan.Load("../../configs/compose/dialplan.yaml")
	must(t, err)
	r, ok := dp.Route(dialplan.CallInfo{To: "room"})
	if !ok || r.Target.Room == nil || r.Target.Room.LiveKit == nil || r.Target.Room.LiveKit.URL != "ws://livekit:7880" {
		t.Errorf("the room route does not reach the livekit service: %+v", r)
	}
}

// The dashboard is valid JSON, and every switchboard_ series it charts is one the
// gateway exports (a renamed metric would leave an empty panel).
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../configs/grafana-dashboard.json")
	must(t, err)
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	must(t, json.Unmarshal(b, &d))
	rec := &descRecorder{names: map[string]bool{}}
	bridge.NewMetrics(rec)
	charted := map[string]bool{}
	series := regexp.MustCompile(`\bswitchboard_[a-z_]+`)
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, s := range series.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "_bucket"), "_count"), "_sum")
				if !rec.names[base] {
					t.Errorf("panel %q charts %s, which the gateway does not export", p.Title, s)
				}
				charted[base] = true
			}
		}
	}
	for n := range rec.names {
		if !charted[n] {
			t.Errorf("%s is exported but on no panel", n)
		}
	}
	t.Logf("%d panels chart %d of %d series", len(d.Panels), len(charted), len(rec.names))
}

// descRecorder is a Registerer that notes the names of what registers with it.
type descRecorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r *descRecorder) Unregister(prometheus.Collector) bool { return false }
