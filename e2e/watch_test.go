package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/client"
)

// vsNamed is a VirtualService of namespace ns for host reviews whose route goes to
// subset.
func vsNamed(name, ns, subset string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s, namespace: %s}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: %s}}]}]
`, name, ns, subset)
}

// TestWatchFollowsConfigurationAcrossNodes: `navarch get vs -w -o json` through one
// node prints what there is, then every change of that kind and namespace applied
// through another node, in order (and none of other kinds or namespaces). When its
// node stops, the watch ends with an error; watched again through a third node from
// the last revision it saw, it gets exactly the changes made in between.
func TestWatchFollowsConfigurationAcrossNodes(t *testing.T) {
	c := startCluster(t, 3)
	apply := func(node, doc string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := apiOf(c, node).Apply(ctx, "", []client.File{{Source: "doc.yaml", Data: doc}}); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(node, name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := apiOf(c, node).Delete(ctx, "virtualservices", "default", name); err != nil {
			t.Fatal(err)
		}
	}
	apply("n2", vsNamed("reviews", "default", "v1"))

	n1, _ := c.Node("n1")
	cmd := exec.Command(navarchBin, "get", "vs", "-w", "-o", "json")
	cmd.Env = append(os.Environ(), "NAVARCH_SERVER="+n1.HTTP, "NAVARCH_TOKEN_FILE="+c.TokenFile())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	var lastRev string
	next := func(want string) {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("navarch get -w ended before %s: %s", want, stderr.String())
			}
			var ev client.WatchEvent
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			r, err := ev.Resource()
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if got := ev.Type + " " + r.Meta.Namespace + "/" + r.Meta.Name + " " + subsetOf(r.Spec); got != want {
				t.Fatalf("event %q, want %q", got, want)
			}
			lastRev = r.Meta.ResourceVersion
		case <-time.After(30 * time.Second):
			t.Fatalf("no event %s within 30 s: %s", want, stderr.String())
		}
	}
	next("ADDED default/reviews v1")

	apply("n2", vsNamed("reviews", "other", "v1")) // another namespace
	apply("n2", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n")
	apply("n2", vsNamed("reviews", "default", "v2"))
	apply("n3", vsNamed("canary", "default", "v3"))
	remove("n2", "reviews")
	next("MODIFIED default/reviews v2")
	next("ADDED default/canary v3")
	next("DELETED default/reviews v2")
	seen := lastRev

	if err := c.Terminate("n1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(stderr.String(), "the node is stopping") {
			t.Fatalf("navarch get -w, its node stopped: %v, stderr %q; want an error saying so", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("navarch get -w still runs 30 s after its node stopped")
	}

	apply("n2", vsNamed("canary", "default", "v4"))
	apply("n2", vsNamed("late", "default", "v1"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := apiOf(c, "n3").Watch(ctx, "", "virtualservices", "default", seen)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for ev := range events {
		r, err := ev.Resource()
		if err != nil {
			t.Fatalf("%+v: %v", ev, err)
		}
		got = append(got, ev.Type+" "+r.Meta.Name+" "+subsetOf(r.Spec))
		if len(got) == 2 {
			break
		}
	}
	if want := "MODIFIED canary v4,ADDED late v1"; strings.Join(got, ",") != want {
		t.Errorf("watched again from revision %s through n3: %v, want %s", seen, got, want)
	}
}

// subsetOf is the subset of a VirtualService's first route.
func subsetOf(spec any) string {
	vs, ok := spec.(*networking.VirtualService)
	if !ok || len(vs.GetHttp()) == 0 || len(vs.GetHttp()[0].GetRoute()) == 0 {
		return ""
	}
	return vs.GetHttp()[0].GetRoute()[0].GetDestination().GetSubset()
}
