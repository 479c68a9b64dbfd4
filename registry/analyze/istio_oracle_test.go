package analyze

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// The oracle is Istio's own analysis: istio-analyze (e2e/peers/istio, built by `make
// peers`) runs istioctl analyze's analyzers over the same files, as `istioctl analyze
// --use-kube=false` does. Istio's analyzers find services among Kubernetes Services
// and ServiceEntries and workloads among pods, where navarch's registry holds every
// source's; so the comparison is of the checks that need no pods, and the inputs
// define their services by ServiceEntries.

// comparable are the codes both analyses give without pods.
var comparable = map[string]bool{
	"IST0101": true, "IST0109": true, "IST0111": true, "IST0112": true, "IST0128": true, "IST0129": true,
	"IST0132": true, "IST0134": true, "IST0145": true, "IST0160": true, "IST0174": true, "IST0177": true,
	"IST0151": true, "IST0152": true, "IST0153": true, "IST0154": true, "IST0155": true, "IST0157": true,
	"IST0130": true, "IST0131": true, "IST0133": true, "IST0002": true,
}

// istioAnalysis runs istio-analyze over docs and returns its messages as
// "code (Kind namespace/name) text", or skips the test (fails it in CI) without it.
func istioAnalysis(t *testing.T, docs string) []string {
	t.Helper()
	bin := filepath.Join("..", "..", ".peers", "bin", "istio-analyze")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing (run make peers): %v", bin, err)
		}
		t.Skipf("%s missing; run `make peers`", bin)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "messages.json")
	if err := os.WriteFile(in, []byte(docs), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "--out", out, in).CombinedOutput(); err != nil {
		t.Fatalf("istio-analyze: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m struct{ Code, Level, Resource, Message string }
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m.Level+" ["+m.Code+"] ("+m.Resource+") "+m.Message)
	}
	return msgs
}

// TestSameFindingsAsIstio holds navarch's analysis of each case to Istio's: the same
// codes for the same resources, among the codes both give without pods. Where the
// message says the same thing, in the same words. The differences that remain are
// deliberate, each named below with its reason.
func TestSameFindingsAsIstio(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			compareWithIstio(t, reviews+"\n---\n"+tc.docs)
		})
	}
}

// compareWithIstio analyzes docs with both and fails the test where their
// comparable findings differ, but for the deliberate differences.
func compareWithIstio(t *testing.T, docs string) {
	t.Helper()
	snap := snapshotOf(t, docs)
	all := istioAnalysis(t, docs)
	var istio []string
	for _, m := range all {
		if comparableMessage(m) && !deliberate(m, all, snap) {
			istio = append(istio, comparedPart(m))
		}
	}
	var navarch []string
	for _, m := range Analyze(snap) {
		s := m.String()
		if !comparableMessage(s) {
			continue
		}
		if m.Code == "IST0155" && !slices.Contains(all, s) {
			// Istio gives IST0155 to a relative patch when an EnvoyFilter it
			// visited before patches the same object for some proxy versions; it
			// visits them in its store's order, which varies from run to run,
			// so it sometimes leaves out what navarch, going by creation time,
			// always finds. Istio's IST0155s must be navarch's; not the reverse.
			continue
		}
		navarch = append(navarch, comparedPart(s))
	}
	slices.Sort(istio)
	slices.Sort(navarch)
	istio, navarch = slices.Compact(istio), slices.Compact(navarch)
	if !slices.Equal(istio, navarch) {
		t.Errorf("Istio:\n  %s\nnavarch:\n  %s", strings.Join(istio, "\n  "), strings.Join(navarch, "\n  "))
	}
}

func comparableMessage(m string) bool {
	_, rest, _ := strings.Cut(m, "[")
	code, _, _ := strings.Cut(rest, "]")
	return comparable[code]
}

// comparedPart is what of a message is compared: all of it, but for IST0109 only
// the code and resource. Istio names the host with the namespaces that see it
// ("*/reviews.default.svc.cluster.local") and lists the VirtualServices of one of
// the groups the resource is in, which one depending on Go's map order; navarch
// names the host and every VirtualService that claims it where the resource is seen.
func comparedPart(m string) string {
	if strings.Contains(m, "[IST0109]") {
		head, _, _ := strings.Cut(m, ") ")
		return head + ")"
	}
	return m
}

// deliberate reports a message of Istio's that navarch does not give, on purpose;
// all are Istio's messages for the same input.
func deliberate(m string, all []string, snap *registry.Snapshot) bool {
	switch {
	case strings.Contains(m, "Referenced selector not found"):
		// A Gateway's or Sidecar's selector that matches no pod: Istio knows
		// workloads by pods only; navarch's gateway proxies need not be registered
		// workloads, and its check of selectors (IST0127) is a warning.
		return true
	case strings.Contains(m, "[IST0109]"):
		// Istio also counts a VirtualService whose wildcard host covers another's
		// ("*.d" and "*.productpage.d"). Proxies route a name to the most specific
		// host that covers it, which is defined, so navarch counts only one host
		// claimed twice.
		_, rest, _ := strings.Cut(m, "The VirtualServices ")
		list, rest, _ := strings.Cut(rest, " associated with mesh gateway define the same host ")
		scoped, _, _ := strings.Cut(rest, " ")
		_, host, _ := strings.Cut(scoped, "/")
		for _, r := range snap.Config(api.VirtualService) {
			if !slices.Contains(strings.Split(list, ","), r.Meta.Namespace+"/"+r.Meta.Name) {
				continue
			}
			hosts := r.Spec.(*networking.VirtualService).Hosts
			if !slices.ContainsFunc(hosts, func(h string) bool { return registry.ResolveHost(h, r.Meta.Namespace, snap.Domain) == host }) {
				return true
			}
		}
	case strings.Contains(m, "[IST0157]"):
		// Istio reports an access logging entry without providers whenever the mesh
		// config names no default ones; navarch not where a Telemetry above it (the
		// mesh's, in istio-system) names providers for it to inherit, as proxies
		// inherit them.
		if strings.Contains(m, "(Telemetry istio-system/") {
			return false
		}
		for _, r := range snap.Config(api.Telemetry) {
			t := r.Spec.(*telemetry.Telemetry)
			if r.Meta.Namespace == "istio-system" && len(t.GetSelector().GetMatchLabels()) == 0 &&
				slices.ContainsFunc(t.AccessLogging, func(l *telemetry.AccessLogging) bool { return len(l.Providers) > 0 }) {
				return true
			}
		}
	case strings.Contains(m, "[IST0132]"):
		// Istio also says a Gateway that does not exist lacks the route's hosts;
		// navarch reports only that it does not exist.
		_, gw, _ := strings.Cut(m, "not found in Gateway ")
		gw = strings.TrimSuffix(gw, ".")
		for _, o := range all {
			if resourceOf(o) == resourceOf(m) && qualified(o) == gw {
				return true
			}
		}
	}
	return false
}

// resourceOf returns the "(Kind namespace/name)" of a message.
func resourceOf(m string) string {
	_, rest, _ := strings.Cut(m, "(")
	r, _, _ := strings.Cut(rest, ")")
	return r
}

// qualified returns the gateway a "Referenced gateway not found" message quotes, as
// namespace/name (the message's resource's namespace where it names none).
func qualified(m string) string {
	_, q, ok := strings.Cut(m, "Referenced gateway not found: ")
	if !ok {
		return ""
	}
	name, err := strconv.Unquote(q)
	if err != nil || strings.Contains(name, "/") {
		return name
	}
	_, nsName, _ := strings.Cut(resourceOf(m), " ")
	ns, _, _ := strings.Cut(nsName, "/")
	return ns + "/" + name
}

// TestSameFindingsAsIstioOnItsTestdata runs both analyses over the files of Istio's
// analyzer tests (pkg/config/analysis/analyzers/testdata) that hold only kinds
// navarch serves and that navarch accepts.
func TestSameFindingsAsIstioOnItsTestdata(t *testing.T) {
	dir := istioTestdata(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, skipped, err := api.Decode(filepath.Base(f), b, "")
		if err != nil || len(skipped) > 0 || len(rs) == 0 {
			continue // kinds navarch does not serve, or configuration it refuses
		}
		compared++
		// Both are given the resources as navarch read them, each with its
		// namespace ("default" where the file names none, which Istio would leave
		// empty).
		docs := make([]string, 0, len(rs))
		for _, r := range rs {
			j, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, string(j))
		}
		b = []byte(strings.Join(docs, "\n---\n"))
		t.Run(filepath.Base(f), func(t *testing.T) {
			compareWithIstio(t, string(b))
		})
	}
	t.Logf("compared %d of Istio's %d test files", compared, len(files))
	if compared < 20 {
		t.Errorf("only %d of Istio's test files compared", compared)
	}
}

// istioTestdata returns the directory of Istio's analyzer test files, in the module
// cache where `make peers` put Istio's module.
func istioTestdata(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio")
	cmd.Dir = filepath.Join("..", "..", "e2e", "peers", "istio")
	out, err := cmd.Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "pkg", "config", "analysis", "analyzers", "testdata")
	if _, statErr := os.Stat(dir); err != nil || statErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Istio's module is not in the module cache (run make peers): %v %v", err, statErr)
		}
		t.Skip("Istio's module is not in the module cache; run `make peers`")
	}
	return dir
}
