// Package corpus finds Istio's configuration test corpus, which navarch's tests
// read from ../shared, beside the repository (CI has it there), and never copy.
package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir is the corpus, relative to a package directory one level below the
// repository's root, where go test runs that package's tests.
var Dir = filepath.Join("..", "..", "shared", "corpus", "istio-testdata")

// Files returns the corpus's YAML files. Without the corpus the calling test is
// skipped on a workstation and fails in CI (CI set), where it must be present.
func Files(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(Dir, "*.yaml"))
	if err == nil && len(files) == 0 {
		_, err = os.Stat(Dir)
	}
	if err != nil || len(files) == 0 {
		if os.Getenv("CI") == "" {
			tb.Skipf("Istio corpus not found at %s (%v); set CI to make this fatal", Dir, err)
		}
		tb.Fatalf("Istio corpus not found at %s: %v", Dir, err)
	}
	return files
}
