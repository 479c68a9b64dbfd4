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
// the last revision it saw, it gets exactly the changes made in between. Given two
// nodes (NAVARCH_SERVER=n1,n2), navarch get -w goes on through the second.
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
	n2, _ := c.Node("n2")
	w := startCLIStream(t, "NAVARCH_SERVER="+n1.HTTP, "NAVARCH_TOKEN_FILE="+c.TokenFile())("get", "vs", "-w", "-o", "json")
	both := startCLIStream(t, "NAVARCH_SERVER="+n1.HTTP+","+n2.HTTP, "NAVARCH_TOKEN_FILE="+c.TokenFile())("get", "vs", "-w", "-o", "name")
	var lastRev string
	next := func(want string) {
		t.Helper()
		var ev client.WatchEvent
		if err := json.Unmarshal([]byte(w.next(t, want)), &ev); err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		r, err := ev.Resource()
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		if got := ev.Type + " " + r.Meta.Namespace + "/" + r.Meta.Name + " " + subsetOf(r.Spec); got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
		lastRev = r.Meta.ResourceVersion
	}
	next("ADDED default/reviews v1")
	// Both watches print what there is first: changes from now on come as events.
	if got := both.next(t, "ADDED"); got != "ADDED virtualservice.networking.istio.io/reviews" {
		t.Fatalf("navarch get -w through n1,n2 begins with %q", got)
	}

	apply("n2", vsNamed("reviews", "other", "v1")) // another namespace
	apply("n2", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n")
	apply("n2", vsNamed("reviews", "default", "v2"))
	apply("n3", vsNamed("canary", "default", "v3"))
	remove("n2", "reviews")
	next("MODIFIED default/reviews v2")
	next("ADDED default/canary v3")
	next("DELETED default/reviews v2")
	seen := lastRev
	for _, want := range []string{"MODIFIED", "ADDED", "DELETED"} {
		if got := both.next(t, want); !strings.HasPrefix(got, want+" ") {
			t.Fatalf("navarch get -w through n1,n2: %q, want %s", got, want)
		}
	}

	if err := c.Terminate("n1"); err != nil {
		t.Fatal(err)
	}
	if stderr, err := w.wait(t); err == nil || !strings.Contains(stderr, "the node is stopping") {
		t.Fatalf("navarch get -w, its node stopped: %v, stderr %q; want an error saying so", err, stderr)
	}

	apply("n2", vsNamed("canary", "default", "v4"))
	apply("n2", vsNamed("late", "default", "v1"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := apiOf(c, "n3").Watch(ctx, client.Selection{Kind: "virtualservices", Namespace: "default"}, seen)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MODIFIED virtualservice.networking.istio.io/canary", "ADDED virtualservice.networking.istio.io/late"} {
		if got := both.next(t, want); got != want {
			t.Errorf("navarch get -w through n1,n2, n1 stopped: %q, want %q", got, want)
		}
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

// cliStream is a running CLI command whose output is read line by line.
type cliStream struct {
	lines  chan string
	exited chan error
	stderr *strings.Builder
}

// startCLIStream returns a function that starts the CLI with args and env added to
// the test's environment; the process is killed when the test ends.
func startCLIStream(t *testing.T, env ...string) func(args ...string) *cliStream {
	return func(args ...string) *cliStream {
		t.Helper()
		cmd := exec.Command(navarchBin, args...)
		cmd.Env = append(os.Environ(), env...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		s := &cliStream{lines: make(chan string, 64), exited: make(chan error, 1), stderr: &strings.Builder{}}
		cmd.Stderr = s.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				s.lines <- sc.Text()
			}
			close(s.lines)
			s.exited <- cmd.Wait()
		}()
		t.Cleanup(func() { cmd.Process.Kill() })
		return s
	}
}

// next returns the next line, which should be what; it fails the test when the
// command ends or prints nothing for 30 s.
func (s *cliStream) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			t.Fatalf("the command ended before %s: %s", what, s.stderr.String())
		}
		return line
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s within 30 s: %s", what, s.stderr.String())
	}
	return ""
}

// wait waits up to 30 s for the command to end, and returns its stderr and how it
// ended.
func (s *cliStream) wait(t *testing.T) (string, error) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-s.lines: // what it printed after the last line read
			if !ok {
				return s.stderr.String(), <-s.exited
			}
		case <-deadline:
			t.Fatal("the command still runs after 30 s")
		}
	}
}

// TestGetSelectsByLabels: navarch get -l takes kubectl's label selectors, listing
// and watching; a resource that comes to match a watch's selector is ADDED to it,
// one that stops matching is DELETED from it. delete -l and --all delete by them.
func TestGetSelectsByLabels(t *testing.T) {
	p := startDevNode(t)
	labelled := func(name, labels string) string {
		return strings.Replace(vsNamed(name, "default", "v1"), "metadata: {name: "+name+",", "metadata: {name: "+name+", labels: {"+labels+"},", 1)
	}
	dir := t.TempDir()
	mustCLI(t, p.HTTP, "apply", "-f", writeFile(t, dir, "vs.yaml", labelled("a", "app: reviews")+"---\n"+labelled("b", "app: reviews, canary: 'yes'")+"---\n"+labelled("c", "app: ratings")))
	for sel, want := range map[string]string{
		"app=reviews":         "a b",
		"app=reviews,!canary": "a",
		"app in (ratings,x)":  "c",
		"app!=reviews":        "c",
	} {
		out := mustCLI(t, p.HTTP, "get", "vs", "-l", sel, "-o", "name")
		var got []string
		for _, l := range strings.Fields(out) {
			got = append(got, strings.TrimPrefix(l, "virtualservice.networking.istio.io/"))
		}
		if strings.Join(got, " ") != want {
			t.Errorf("get vs -l %q: %q, want %s", sel, out, want)
		}
	}
	if res := cli(t, p.HTTP, "get", "vs", "-l", "app==="); res.Code == 0 || !strings.Contains(res.Stderr, `-l "app==="`) {
		t.Errorf("a bad selector: exit %d, %q", res.Code, res.Stderr)
	}

	w := startCLIStream(t, "NAVARCH_SERVER="+p.HTTP)("get", "vs", "-w", "-l", "app=reviews", "-o", "name")
	for _, want := range []string{"ADDED virtualservice.networking.istio.io/a", "ADDED virtualservice.networking.istio.io/b"} {
		if got := w.next(t, want); got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
	// The API's own watch with the selector (the CLI selects again, for nodes of
	// older builds), and its list.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api := client.New(p.HTTP, "")
	selected := client.Selection{Kind: "virtualservices", Namespace: "default", LabelSelector: "app=reviews"}
	rs, _, err := api.ListSelection(ctx, selected)
	if err != nil || len(rs) != 2 || rs[0].Meta.Name != "a" || rs[1].Meta.Name != "b" {
		t.Fatalf("the API's list of app=reviews: %v %v", rs, err)
	}
	events, err := api.Watch(ctx, selected, "")
	if err != nil {
		t.Fatal(err)
	}
	apiEvent := func() string {
		ev := <-events
		r, err := ev.Resource()
		if err != nil {
			t.Fatalf("%+v: %v", ev, err)
		}
		return ev.Type + " " + r.Meta.Name
	}
	for _, want := range []string{"ADDED a", "ADDED b"} {
		if got := apiEvent(); got != want {
			t.Fatalf("the API's watch of app=reviews: %q, want %q", got, want)
		}
	}
	mustCLI(t, p.HTTP, "apply", "-f", writeFile(t, dir, "b.yaml", labelled("b", "app: other")))
	mustCLI(t, p.HTTP, "apply", "-f", writeFile(t, dir, "c.yaml", labelled("c", "app: reviews")))
	mustCLI(t, p.HTTP, "apply", "-f", writeFile(t, dir, "a.yaml", labelled("a", "app: reviews, tier: x")))
	for _, want := range []string{
		"DELETED virtualservice.networking.istio.io/b",
		"ADDED virtualservice.networking.istio.io/c",
		"MODIFIED virtualservice.networking.istio.io/a",
	} {
		if got := w.next(t, want); got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
	for _, want := range []string{"DELETED b", "ADDED c", "MODIFIED a"} {
		if got := apiEvent(); got != want {
			t.Errorf("the API's watch of app=reviews: %q, want %q", got, want)
		}
	}

	// delete -l deletes what the selector matches; a kind alone deletes nothing.
	if res := cli(t, p.HTTP, "delete", "vs"); res.Code == 0 {
		t.Errorf("delete of a kind without names, -l or --all: exit 0, %q", res.Stdout)
	}
	if out := mustCLI(t, p.HTTP, "delete", "vs", "-l", "app=reviews"); out != "virtualservice.networking.istio.io/a deleted\nvirtualservice.networking.istio.io/c deleted\n" {
		t.Errorf("delete -l app=reviews: %q", out)
	}
	if out := mustCLI(t, p.HTTP, "delete", "vs", "--all"); out != "virtualservice.networking.istio.io/b deleted\n" {
		t.Errorf("delete --all: %q", out)
	}
}
