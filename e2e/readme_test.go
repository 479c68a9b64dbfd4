package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReadmeTour runs the shell of the README's five-minute tour as written, against
// a dev node the test starts in place of `make run` (on free ports; the commands find
// it through NAVARCH_SERVER), and checks what the README says they print: the error
// for bad input and the finding of analysis word for word, the 80/20 split within a
// few points, and all RPCs to v2 after the change.
func TestReadmeTour(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start, end := strings.Index(text, "## A five-minute tour"), strings.Index(text, "## A cluster")
	if start < 0 || end < start {
		t.Fatal("README.md has no five-minute tour before its cluster section")
	}
	tour := text[start:end]
	var script strings.Builder
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(tour, -1)
	if len(blocks) < 4 {
		t.Fatalf("the tour has %d shell blocks", len(blocks))
	}
	for _, b := range blocks {
		for _, line := range strings.Split(b[1], "\n") {
			switch {
			case strings.TrimSpace(line) == "make run": // the test's dev node stands in
				continue
			case strings.HasPrefix(line, "export PATH="): // the binary under test instead
				continue
			}
			script.WriteString(strings.ReplaceAll(line, "| less", "| head -n 3") + "\n")
		}
	}
	script.WriteString("kill $(jobs -p)\nwait\n")

	node := startDevNode(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(navarchBin)+":"+os.Getenv("PATH"), "NAVARCH_SERVER="+node.HTTP)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the tour's shell: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"virtualservice.networking.istio.io/reviews created",
		strings.TrimPrefix(regexp.MustCompile(`# error: stdin: [^\n]*`).FindString(tour), "# "),
		strings.TrimPrefix(regexp.MustCompile(`# Error \[IST0101\] [^\n]*`).FindString(tour), "# "),
		strings.TrimPrefix(regexp.MustCompile(`# \+\+\+ applied [^\n]*`).FindString(tour), "# "),
		"virtualservice.networking.istio.io/reviews configured",
	} {
		if want == "" || !strings.Contains(got, want) {
			t.Errorf("the tour printed no %q:\n%s", want, got)
		}
	}
	counts := regexp.MustCompile(`(?m)^(v[12])\s+(\d+)$`).FindAllStringSubmatch(got, -1)
	if len(counts) != 3 {
		t.Fatalf("want two calls' tallies (v1 and v2, then v2), got %v in:\n%s", counts, got)
	}
	n := func(i int) int { v, _ := strconv.Atoi(counts[i][2]); return v }
	// Within 4 points of 80%, as the issue asks, over 2,000 RPCs: 4.5 standard
	// deviations of the split (over 1,000 it would be 3.2, and fail one run in 600).
	if counts[0][1] != "v1" || n(0) < 1520 || n(0) > 1680 || counts[1][1] != "v2" || n(0)+n(1) != 2000 {
		t.Errorf("first call: %v, want v1 about 1600 of 2000 and v2 the rest", counts[:2])
	}
	if counts[2][1] != "v2" || n(2) != 100 {
		t.Errorf("after the change: %v, want v2 100", counts[2])
	}
}
