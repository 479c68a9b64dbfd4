package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestAlertRulesNameExportedMetrics: every metric the shipped alerting rules
// (deploy/prometheus/navarch.rules.yaml) name is one a node exports: in a dev
// node's /metrics, or, for those that appear only once something happens (a
// rejected configuration, a stale source), declared in navarch's code. Each rule
// has a severity and a summary.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", "navarch.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	if err := yaml.UnmarshalStrict(b, &file); err != nil {
		t.Fatal(err)
	}

	p := startDevNode(t)
	_, exported := get(p.HTTP, "/metrics")
	declared := declaredMetrics(t)
	// PromQL's own words, and the series Prometheus makes itself.
	promql := map[string]bool{"up": true, "by": true, "sum": true, "max": true, "min": true, "count": true, "rate": true,
		"increase": true, "histogram_quantile": true, "time": true, "job": true, "le": true}
	name := regexp.MustCompile(`[a-z_][a-z0-9_]*`)
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: want an alert name, a severity and a summary", r)
			}
			// Drop label matchers' values and label names in by (...): what is left
			// are functions and metric names.
			expr := regexp.MustCompile(`"[^"]*"|by \([^)]*\)|\{[^}]*\}|\[[^]]*\]`).ReplaceAllString(r.Expr, " ")
			for _, m := range name.FindAllString(expr, -1) {
				metric := strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_total")
				if promql[m] || strings.Contains(exported, "\n"+m) || declared[metric] || declared[m] {
					continue
				}
				t.Errorf("%s names %s, which no node exports", r.Alert, m)
			}
		}
	}
	if rules < 5 {
		t.Fatalf("the rules file has %d rules", rules)
	}
}

// declaredMetrics are the metric names navarch's code declares (Name: "...",
// prometheus.NewDesc("...", and the gauges of ca/expiry.go).
func declaredMetrics(t *testing.T) map[string]bool {
	out := map[string]bool{}
	decl := regexp.MustCompile(`(?:Name: *|NewDesc\(|gauge\()"([a-z_][a-z0-9_]*)"`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == ".peers" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
