package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAnalyze runs `navarch analyze` against a node: it judges the configuration
// with every source's services (here a static inventory synced into the registry),
// analyzes documents as if applied without writing them, and exits non-zero with the
// findings at the failure threshold.
func TestAnalyze(t *testing.T) {
	t.Parallel()
	node := startDevNode(t)
	api := "http://" + node.HTTP
	dir := t.TempDir()

	// ratings is known only to the registry's "cmdb" source, not by a ServiceEntry
	// of the configuration.
	mustCLI(t, api, "registry", "sync", "--source", "cmdb", "-f", writeFile(t, dir, "inventory.yaml", `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: shop}
spec: {address: 10.1.0.1, labels: {app: ratings, version: v1}}
`))
	mustCLI(t, api, "apply", "-f", writeFile(t, dir, "dr.yaml", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
`))

	t.Run("a sound configuration passes", func(t *testing.T) {
		eventually(t, 10*time.Second, "the node to see the inventory", func() error {
			res := cli(t, api, "analyze")
			if res.Code != 0 || !strings.Contains(res.Stdout, "No issues found.") {
				return fmt.Errorf("exit %d: %s%s", res.Code, res.Stdout, res.Stderr)
			}
			return nil
		})
	})

	vs := writeFile(t, dir, "vs.yaml", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings]
  http:
  - route:
    - {destination: {host: ratings, subset: v1}, weight: 90}
    - {destination: {host: ratings, subset: v2}, weight: 10}
`)
	t.Run("documents are analyzed as if applied, and not written", func(t *testing.T) {
		res := cli(t, api, "analyze", "-f", vs)
		want := `Error [IST0101] (VirtualService shop/ratings) Referenced host+subset in destinationrule not found: "ratings+v2"`
		if res.Code == 0 || strings.TrimSpace(res.Stdout) != want || !strings.Contains(res.Stderr, "analysis found 1 issue(s) at level Error or above") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s\nwant stdout: %s", res.Code, res.Stdout, res.Stderr, want)
		}
		if res := cli(t, api, "get", "vs", "ratings", "-n", "shop"); res.Code == 0 {
			t.Fatalf("analyze wrote the VirtualService: %s", res.Stdout)
		}
	})

	t.Run("thresholds and JSON", func(t *testing.T) {
		// Only the errors shown, and none at or above the threshold: exit 0.
		res := cli(t, api, "analyze", "-f", vs, "-o", "json", "--failure-threshold", "Error", "--output-threshold", "Error")
		var msgs []struct{ Code, Level, Kind, Namespace, Name, Message string }
		if err := json.Unmarshal([]byte(res.Stdout), &msgs); err != nil {
			t.Fatalf("%v: %s", err, res.Stdout)
		}
		if len(msgs) != 1 || msgs[0].Code != "IST0101" || msgs[0].Kind != "VirtualService" || msgs[0].Name != "ratings" {
			t.Fatalf("messages %+v", msgs)
		}
		if res.Code == 0 {
			t.Fatal("an Error at failure threshold Error exited 0")
		}
		// Nothing but Warnings and Info fails a threshold above them.
		res = cli(t, api, "analyze", "-f", writeFile(t, dir, "ghost.yaml", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ghost, namespace: shop}
spec: {host: ghost}
`))
		if res.Code != 0 || !strings.Contains(res.Stdout, "Warning [IST0174] (DestinationRule shop/ghost)") {
			t.Fatalf("a Warning at failure threshold Error: exit %d: %s%s", res.Code, res.Stdout, res.Stderr)
		}
	})

	t.Run("a document replaces the stored resource it names", func(t *testing.T) {
		mustCLI(t, api, "apply", "-f", vs)
		eventually(t, 10*time.Second, "the node to see the VirtualService", func() error {
			if res := cli(t, api, "analyze"); !strings.Contains(res.Stdout, `"ratings+v2"`) {
				return fmt.Errorf("exit %d: %s%s", res.Code, res.Stdout, res.Stderr)
			}
			return nil
		})
		// Were the fixed document added beside the stored one, the two would claim
		// one host (IST0109).
		fixed := writeFile(t, dir, "fixed.yaml", strings.Replace(readFile(t, vs), "subset: v2", "subset: v1", 1))
		if res := cli(t, api, "analyze", "-f", fixed); res.Code != 0 || !strings.Contains(res.Stdout, "No issues found.") {
			t.Fatalf("exit %d: %s%s", res.Code, res.Stdout, res.Stderr)
		}
	})

	t.Run("the node's metrics count what analysis finds", func(t *testing.T) {
		const metric = `navarch_config_analysis_messages{code="IST0101",level="Error"} 1`
		eventually(t, 20*time.Second, "the node to count the stored VirtualService's error", func() error {
			if _, body := get(node.HTTP, "/metrics"); !strings.Contains(body, metric) {
				return fmt.Errorf("no %s in /metrics", metric)
			}
			return nil
		})
		mustCLI(t, api, "apply", "-f", writeFile(t, dir, "fixed.yaml", strings.Replace(readFile(t, vs), "subset: v2", "subset: v1", 1)))
		eventually(t, 20*time.Second, "the node to count no error", func() error {
			if _, body := get(node.HTTP, "/metrics"); strings.Contains(body, "navarch_config_analysis_messages{") {
				return fmt.Errorf("analysis messages still counted after the fix")
			}
			return nil
		})
	})

	t.Run("--local knows only the files", func(t *testing.T) {
		res := cli(t, api, "analyze", "--local", "-f", vs, "--output-threshold", "Error")
		for _, want := range []string{
			`Referenced host not found: "ratings"`,
			`Referenced host+subset in destinationrule not found: "ratings+v1"`,
		} {
			if !strings.Contains(res.Stdout, want) {
				t.Errorf("missing %q in:\n%s", want, res.Stdout)
			}
		}
		if res.Code == 0 {
			t.Error("exit 0")
		}
	})

	t.Run("unknown output formats and levels are refused", func(t *testing.T) {
		for _, args := range [][]string{{"-o", "yaml"}, {"--failure-threshold", "Fatal"}, {"--output-threshold", "debug"}} {
			if res := cli(t, api, append([]string{"analyze"}, args...)...); res.Code == 0 || !strings.Contains(res.Stderr, args[1]) {
				t.Errorf("analyze %v: exit %d: %s%s", args, res.Code, res.Stdout, res.Stderr)
			}
		}
	})

	t.Run("invalid documents are refused", func(t *testing.T) {
		res := cli(t, api, "analyze", "-f", writeFile(t, dir, "bad.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: []}\n"))
		if res.Code == 0 || !strings.Contains(res.Stderr, "VirtualService default/x") {
			t.Fatalf("exit %d: %s%s", res.Code, res.Stdout, res.Stderr)
		}
	})
}

// TestApplyWarns: what Istio's validation warns of (a rule no request reaches, a
// deprecated setting) is applied, as Istio applies it, and the CLI prints each
// warning on stderr as kubectl prints a webhook's; a dry run warns alike, and
// analysis keeps reporting the unreachable rule (IST0130) afterwards.
func TestApplyWarns(t *testing.T) {
	node := startDevNode(t)
	api := "http://" + node.HTTP
	vs := writeFile(t, t.TempDir(), "vs.yaml", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
`)
	const warning = "Warning: virtualservice.networking.istio.io/reviews: spec.http[1]: virtualService rule #1 not used (route without matches defined before)\n"
	for _, args := range [][]string{{"apply", "--dry-run", "-f", vs}, {"apply", "-f", vs}} {
		res := cli(t, api, args...)
		if res.Code != 0 || res.Stderr != warning || !strings.Contains(res.Stdout, "virtualservice.networking.istio.io/reviews created") {
			t.Fatalf("navarch %s: exit %d\nstdout: %s\nstderr: %q\nwant stderr: %q", strings.Join(args, " "), res.Code, res.Stdout, res.Stderr, warning)
		}
	}
	if out := mustCLI(t, api, "get", "vs", "reviews", "-o", "yaml"); !strings.Contains(out, "jason") {
		t.Fatalf("the VirtualService warned of was not applied: %s", out)
	}
	if res := cli(t, api, "apply", "--dry-run", "--warnings-as-errors", "-f", vs); res.Code == 0 || !strings.Contains(res.Stderr, warning) {
		t.Fatalf("apply --warnings-as-errors: exit %d\nstderr: %s", res.Code, res.Stderr)
	}
	res := cli(t, api, "analyze", "--output-threshold", "Warning")
	if want := "Warning [IST0130] (VirtualService default/reviews) VirtualService rule #1 not used (route without matches defined before)."; !strings.Contains(res.Stdout, want) {
		t.Fatalf("analyze: exit %d\n%s%s\nwant %s", res.Code, res.Stdout, res.Stderr, want)
	}
}
