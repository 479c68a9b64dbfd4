package main

import (
	"strings"
	"testing"

	"github.com/navarch/navarch/bench"
)

// TestPrintResultListsRuns: a repeated convergence's runs print one line each.
func TestPrintResultListsRuns(t *testing.T) {
	var out strings.Builder
	printResult(&out, "convergence", &bench.ConvergenceResult{Proxies: 10, P99: 12.5, RSSBytes: 3 << 20,
		Runs: []bench.ConvergenceRun{{P50: 5, P99: 12.5}, {P50: 6, P99: 20}}})
	got := out.String()
	for _, want := range []string{
		"navarch bench convergence\n",
		"  p99_ms               12.5\n",
		"  rss_bytes            3.0 MiB\n",
		"  runs\n    1   cpu_seconds=0 loadgen_cpu_seconds=0 max_ms=0 p50_ms=5 p99_ms=12.5\n    2   cpu_seconds=0 loadgen_cpu_seconds=0 max_ms=0 p50_ms=6 p99_ms=20\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
