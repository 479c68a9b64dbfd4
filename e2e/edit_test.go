package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEditAppliesWhatIsSaved: navarch edit opens the resource's YAML in
// $NAVARCH_EDITOR (here scripts that change the file as a user would) and applies
// what is saved; saving nothing new cancels; invalid configuration is shown again
// with the error on top, and saving it unchanged gives up, writing nothing; a
// resource changed by someone else meanwhile is not overwritten.
func TestEditAppliesWhatIsSaved(t *testing.T) {
	p := startDevNode(t)
	dir := t.TempDir()
	mustCLI(t, p.HTTP, "apply", "-f", writeFile(t, dir, "vs.yaml", splitVS(80, 20)))
	weight := func() string {
		t.Helper()
		out := mustCLI(t, p.HTTP, "get", "vs", "reviews", "-o", "yaml")
		return strings.Join(strings.Fields(strings.Join(grepLines(out, "weight:"), " ")), " ")
	}
	edit := func(script string) cliResult {
		t.Helper()
		editor := writeFile(t, t.TempDir(), "editor.sh", "#!/bin/sh\n"+script+"\n")
		if err := os.Chmod(editor, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("NAVARCH_EDITOR", editor)
		return cli(t, p.HTTP, "edit", "vs", "reviews")
	}

	if res := edit(`sed -i 's/weight: 80/weight: 70/; s/weight: 20/weight: 30/' "$1"`); res.Code != 0 ||
		!strings.Contains(res.Stdout, "virtualservice.networking.istio.io/reviews edited") {
		t.Fatalf("edit: exit %d, %q %q", res.Code, res.Stdout, res.Stderr)
	}
	if w := weight(); w != "weight: 70 weight: 30" {
		t.Fatalf("after the edit: %s", w)
	}

	if res := edit(`true`); res.Code != 0 || !strings.Contains(res.Stdout, "Edit cancelled, no changes made.") {
		t.Errorf("an edit that changes nothing: exit %d, %q %q", res.Code, res.Stdout, res.Stderr)
	}

	// The first save is invalid; the second time the editor sees the error on top
	// and leaves the file as it is.
	seen := filepath.Join(t.TempDir(), "seen")
	res := edit(`cp "$1" ` + seen + `; sed -i 's/weight: 70/weight: -70/' "$1"`)
	if res.Code != 1 || !strings.Contains(res.Stderr, "spec.http[0].route[0].weight: must not be negative, got -70") ||
		!strings.Contains(res.Stderr, "your changes are in ") {
		t.Errorf("an invalid edit: exit %d, stderr %q", res.Code, res.Stderr)
	}
	if b, _ := os.ReadFile(seen); !strings.HasPrefix(string(b), "# edited: document 1: VirtualService default/reviews: spec.http[0].route[0].weight: must not be negative") {
		t.Errorf("the editor's second look did not begin with the error:\n%s", b)
	}
	if w := weight(); w != "weight: 70 weight: 30" {
		t.Errorf("an invalid edit changed the resource: %s", w)
	}

	// Someone applies a change while the editor is open.
	other := writeFile(t, dir, "other.yaml", splitVS(60, 40))
	res = edit(`NAVARCH_SERVER=` + p.HTTP + ` "` + navarchBin + `" apply -f ` + other + ` >/dev/null && sed -i 's/weight: 70/weight: 10/' "$1"`)
	if res.Code != 1 || !strings.Contains(res.Stderr, "modified since it was read") {
		t.Errorf("an edit over a change made meanwhile: exit %d, stderr %q", res.Code, res.Stderr)
	}
	if w := weight(); w != "weight: 60 weight: 40" {
		t.Errorf("the edit overwrote the change made meanwhile: %s", w)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}
