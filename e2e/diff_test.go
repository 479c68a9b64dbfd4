package e2e

import (
	"strings"
	"testing"
)

// TestDiffShowsWhatApplyWouldChange: navarch diff against a dev node exits 0 when
// the files are what the node holds, 1 with a unified diff of the changed and new
// resources otherwise, and 2 with the validation error for invalid files; it never
// writes.
func TestDiffShowsWhatApplyWouldChange(t *testing.T) {
	p := startDevNode(t)
	dir := t.TempDir()
	vs := writeFile(t, dir, "vs.yaml", splitVS(80, 20))
	mustCLI(t, p.HTTP, "apply", "-f", vs)

	if res := cli(t, p.HTTP, "diff", "-f", vs); res.Code != 0 || res.Stdout != "" {
		t.Fatalf("diff of what was applied: exit %d, %q %q; want 0 and nothing", res.Code, res.Stdout, res.Stderr)
	}

	changed := writeFile(t, dir, "changed.yaml", splitVS(70, 30)+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}
`)
	res := cli(t, p.HTTP, "diff", "-f", changed)
	if res.Code != 1 || res.Stderr != "" {
		t.Fatalf("diff of changes: exit %d, stderr %q; want 1 and nothing", res.Code, res.Stderr)
	}
	for _, want := range []string{
		"--- live virtualservice.networking.istio.io default/reviews\n+++ applied virtualservice.networking.istio.io default/reviews\n",
		"-      weight: 80\n", "+      weight: 70\n", "-      weight: 20\n", "+      weight: 30\n",
		"--- /dev/null\n+++ applied destinationrule.networking.istio.io default/reviews\n",
		"+      simple: LEAST_REQUEST\n",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("diff lacks %q:\n%s", want, res.Stdout)
		}
	}
	if strings.Contains(res.Stdout, "resourceVersion") || strings.Contains(res.Stdout, "creationTimestamp") {
		t.Errorf("diff shows the metadata the store keeps:\n%s", res.Stdout)
	}

	bad := writeFile(t, dir, "bad.yaml", strings.Replace(splitVS(70, 30), "weight: 70", "weight: -70", 1))
	res = cli(t, p.HTTP, "diff", "-f", bad)
	if res.Code != 2 || !strings.Contains(res.Stderr, "weight: must not be negative") {
		t.Errorf("diff of invalid documents: exit %d, stderr %q; want 2 and the reason", res.Code, res.Stderr)
	}
	if out := mustCLI(t, p.HTTP, "get", "vs", "reviews", "-o", "yaml"); !strings.Contains(out, "weight: 80") {
		t.Errorf("diff changed what the node holds:\n%s", out)
	}
	if out := mustCLI(t, p.HTTP, "get", "dr"); !strings.Contains(out, "No resources found") {
		t.Errorf("diff created a resource:\n%s", out)
	}
}
