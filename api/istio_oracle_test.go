package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/internal/corpus"
)

// The oracle is Istio's own validation, run by istio-validate (e2e/peers/istio,
// built by `make peers`): the API server's checks with Istio's CRDs and the checks
// of istiod's webhook. These tests compare navarch's decisions with it: whatever
// Istio accepts navarch must accept, and whatever Istio rejects navarch must reject.

var peersDir = filepath.Join("..", ".peers")

// istioOracle starts istio-validate, or skips the test (fails it in CI) without it.
func istioOracle(tb testing.TB) *oracle {
	tb.Helper()
	bin, crds := filepath.Join(peersDir, "bin", "istio-validate"), filepath.Join(peersDir, "istio", "crd-all.gen.yaml")
	for _, f := range []string{bin, crds} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("CI") != "" {
				tb.Fatalf("%s missing (run make peers): %v", f, err)
			}
			tb.Skipf("%s missing; run `make peers`", f)
		}
	}
	return &oracle{bin: bin, crds: crds}
}

type oracle struct{ bin, crds string }

type verdict struct {
	ID      string `json:"id"`
	Valid   bool   `json:"valid"`
	Error   string `json:"error"`
	Warning string `json:"warning"`
}

// warnings are the messages of Istio's warning, which joins several as
// hashicorp/go-multierror does ("2 errors occurred:\n\t* a\n\t* b\n\n"), sorted.
func (v verdict) warnings() []string {
	if v.Warning == "" {
		return nil
	}
	out := []string{v.Warning}
	if _, list, ok := strings.Cut(v.Warning, " occurred:\n\t* "); ok && multiErrorHead.MatchString(v.Warning) {
		out = strings.Split(strings.TrimRight(list, "\n"), "\n\t* ")
	}
	sort.Strings(out)
	return out
}

var multiErrorHead = regexp.MustCompile(`^\d+ errors? occurred:\n`)

// sameWarnings reports, for a document both accept, any difference between
// Istio's warnings and navarch's (navarchJudges'), or "".
func sameWarnings(navarch []string, v verdict) string {
	if istio := v.warnings(); !slices.Equal(istio, navarch) {
		return fmt.Sprintf("warnings differ\n\tIstio:   %q\n\tnavarch: %q", istio, navarch)
	}
	return ""
}

// judge has Istio validate every document (JSON or YAML), by id.
func (o *oracle) judge(tb testing.TB, docs map[string][]byte) map[string]verdict {
	tb.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for id, doc := range docs {
		enc.Encode(map[string]string{"id": id, "yaml": string(doc)})
	}
	outFile := filepath.Join(tb.TempDir(), "verdicts.jsonl")
	cmd := exec.Command(o.bin, "--crds", o.crds, "--out", outFile)
	cmd.Stdin = &in
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Run(); err != nil {
		tb.Fatalf("istio-validate: %v\n%s", err, logs.String())
	}
	out, err := os.ReadFile(outFile)
	if err != nil {
		tb.Fatal(err)
	}
	got := map[string]verdict{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v verdict
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			tb.Fatalf("istio-validate output %q: %v", sc.Text(), err)
		}
		got[v.ID] = v
	}
	if len(got) != len(docs) {
		tb.Fatalf("istio-validate judged %d of %d documents", len(got), len(docs))
	}
	return got
}

// navarchJudges decodes and validates one document as `navarch apply` does, and
// returns what it warns of (the reasons, sorted) when it accepts it.
func navarchJudges(doc []byte) (warnings []string, err error) {
	rs, _, err := Decode("doc", doc, "")
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if err := Validate(r); err != nil {
			return nil, err
		}
		for _, w := range Warnings(r) {
			warnings = append(warnings, w.Reason)
		}
	}
	sort.Strings(warnings)
	return warnings, nil
}

type navarchVerdict struct {
	warnings []string
	err      error
}

// judgeAll has navarch judge every document (navarchJudges) while the caller
// waits for Istio's verdicts, and sends them all when done.
func judgeAll(docs map[string][]byte) <-chan map[string]navarchVerdict {
	out := make(chan map[string]navarchVerdict, 1)
	go func() {
		m := make(map[string]navarchVerdict, len(docs))
		for id, doc := range docs {
			w, err := navarchJudges(doc)
			m[id] = navarchVerdict{w, err}
		}
		out <- m
	}()
	return out
}

// corpusDocuments are the corpus's mesh documents, each on its own, by
// "<file>#<index>".
func corpusDocuments(tb testing.TB) map[string][]byte {
	tb.Helper()
	return documentsOf(tb, corpus.Files(tb))
}

// seedDocuments are the corpus's documents and navarch's own: the test inputs of
// xds, testdata/oracle-seeds.yaml, written to set most fields of every kind, and
// testdata/warnings.yaml, of what Istio warns of.
func seedDocuments(tb testing.TB) map[string][]byte {
	tb.Helper()
	docs := corpusDocuments(tb)
	own, err := filepath.Glob(filepath.Join("..", "xds", "testdata", "inputs", "*.yaml"))
	if err != nil || len(own) == 0 {
		tb.Fatalf("xds test inputs: %v", err)
	}
	for id, d := range documentsOf(tb, append(own, filepath.Join("testdata", "oracle-seeds.yaml"), filepath.Join("testdata", "warnings.yaml"))) {
		docs[id] = d
	}
	return docs
}

func documentsOf(tb testing.TB, files []string) map[string][]byte {
	tb.Helper()
	docs := map[string][]byte{}
	sep := regexp.MustCompile(`(?m)^---[ \t]*$`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for i, d := range sep.Split(string(data), -1) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(d), &obj); err != nil || obj == nil {
				continue
			}
			if api, _ := obj["apiVersion"].(string); !strings.Contains(api, ".istio.io/") {
				continue
			}
			docs[fmt.Sprintf("%s#%d", filepath.Base(f), i)] = []byte(d)
		}
	}
	return docs
}

// withEveryVersion adds to docs each document under the kind's other apiVersions
// ("<id>@<version>"), which Istio serves with the same schema: both must take
// them alike.
func withEveryVersion(tb testing.TB, docs map[string][]byte) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for id, d := range docs {
		out[id] = d
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(d, &meta); err != nil {
			tb.Fatalf("%s: %v", id, err)
		}
		k, ok := LookupKind(meta.Kind)
		if !ok {
			tb.Fatalf("%s: kind %q", id, meta.Kind)
		}
		for _, v := range k.Versions {
			re := regexp.MustCompile(`(?m)^apiVersion: *` + regexp.QuoteMeta(k.Group) + `/\S+`)
			out[id+"@"+v] = re.ReplaceAll(d, []byte("apiVersion: "+k.Group+"/"+v))
		}
	}
	return out
}

// istioRejectsCorpus are the corpus documents Istio's validation rejects (see
// TestCorpusDecodes for why navarch accepts them).
var istioRejectsCorpus = map[string]bool{"rule-websocket-route.yaml#2": true, "rule-websocket-route.yaml#3": true}

// TestIstioAgreesOnTheSeeds: Istio's own validation accepts the corpus documents
// and navarch's seeds, save the corpus documents TestCorpusDecodes lists, and so
// does navarch.
func TestIstioAgreesOnTheSeeds(t *testing.T) {
	o := istioOracle(t)
	docs := withEveryVersion(t, seedDocuments(t))
	verdicts := o.judge(t, docs)
	t.Logf("%d documents", len(docs))
	for id, doc := range docs {
		warnings, err := navarchJudges(doc)
		if err != nil {
			t.Errorf("%s: navarch rejects: %v", id, err)
		}
		base, _, _ := strings.Cut(id, "@")
		v := verdicts[id]
		if v.Valid == istioRejectsCorpus[base] {
			t.Errorf("%s: Istio valid=%v (%s), expected otherwise", id, v.Valid, v.Error)
		}
		if v.Valid && err == nil {
			if d := sameWarnings(warnings, v); d != "" {
				t.Errorf("%s: %s", id, d)
			}
		}
	}
}

// TestIstioAgreesOnTheRejects: Istio's validation rejects each document of
// testdata/oracle-rejects.yaml (combinations of fields the seeds' mutations do not
// reach), and so does navarch.
func TestIstioAgreesOnTheRejects(t *testing.T) {
	o := istioOracle(t)
	docs := documentsOf(t, []string{filepath.Join("testdata", "oracle-rejects.yaml")})
	if len(docs) == 0 {
		t.Fatal("no documents in testdata/oracle-rejects.yaml")
	}
	verdicts := o.judge(t, docs)
	for id, doc := range docs {
		if v := verdicts[id]; v.Valid {
			t.Errorf("%s: Istio accepts it; it belongs among the seeds", id)
		}
		if _, err := navarchJudges(doc); err == nil {
			t.Errorf("%s: navarch accepts it; Istio: %s", id, verdicts[id].Error)
		}
	}
}

// mutations derives documents from doc, each with one change to its spec: a value
// replaced by one of a set of awkward values (empty, negative, out of range, the
// wrong type, a bad regex, ...), a field removed or added, a list emptied or its
// first item repeated. Keyed by a description of the change.
func mutations(doc []byte) (map[string][]byte, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	if err := d.Decode(&obj); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	add := func(desc string, m map[string]any) {
		b, err := json.Marshal(m)
		if err == nil {
			out[desc] = b
		}
	}
	var walk func(path []any)
	walk = func(path []any) {
		v := getPath(obj, path)
		where := pathString(path)
		if len(path) > 1 {
			add(where+" removed", withPath(obj, path, nil, true))
		}
		switch v := v.(type) {
		case map[string]any:
			add(where+" +bogusField", withPath(obj, append(clonePath(path), "bogusField"), "x", false))
			if len(path) > 1 {
				add(where+` = "x"`, withPath(obj, path, "x", false))
				add(where+" = [{}]", withPath(obj, path, []any{map[string]any{}}, false))
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			// a key renamed (its first): what it means where the map is a label set
			// or a port map
			if len(keys) > 0 {
				k := keys[0]
				for _, nk := range []string{"", "*", "a b", "-a", "A/b/c", "0", "70000"} {
					renamed := withPath(obj, append(clonePath(path), k), nil, true)
					add(fmt.Sprintf("%s key %q renamed %q", where, k, nk), withPath(renamed, append(clonePath(path), nk), v[k], false))
				}
			}
			for _, k := range keys {
				walk(append(clonePath(path), k))
			}
		case []any:
			add(where+" = []", withPath(obj, path, []any{}, false))
			add(where+" = {}", withPath(obj, path, map[string]any{}, false))
			add(where+` = "x"`, withPath(obj, path, "x", false))
			if len(v) > 0 {
				add(where+" first repeated", withPath(obj, path, append(append([]any{}, v...), v[0]), false))
				for i := range v {
					walk(append(clonePath(path), i))
				}
			}
		default:
			for _, r := range awkward {
				add(fmt.Sprintf("%s = %s", where, mustJSON(r)), withPath(obj, path, r, false))
			}
		}
	}
	walk([]any{"spec"})
	return out, nil
}

// oracleUnsure matches the derived documents on which Istio's verdict is not
// stable: it checks the localities of a distribute entry's "to" in the order of a
// Go map's iteration, so whether "*" overlaps another locality depends on which
// comes first (navarch always says it does).
var oracleUnsure = regexp.MustCompile(`localityLbSetting\.distribute\[\d+\]\.to key ` +
	// And one navarch differs on by choice: Istio takes an empty list for a
	// bytes field (a direct response's body), which navarch refuses as not base64.
	`|directResponse\.body\.bytes = \[\]$`)

// awkward values a scalar is replaced with.
var awkward = []any{"", "*", "(", "a b", "UNKNOWN", "1.2.3.4/40", "/x", "-1s", "0s", "1h", "0.5ms",
	"A_B", "a.b", "-a", "unix:///tmp/s", "10.0.0.0/8", "::1", "https://h/p", strings.Repeat("x", 64),
	json.Number("0"), json.Number("-1"), json.Number("1"), json.Number("101"), json.Number("65536"),
	json.Number("4294967296"), json.Number("1.5"), true, map[string]any{}, []any{}}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func clonePath(p []any) []any { return append([]any(nil), p...) }

func pathString(p []any) string {
	var b strings.Builder
	for i, e := range p {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	return b.String()
}

func getPath(v any, p []any) any {
	for _, e := range p {
		switch e := e.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[e]
		case int:
			l, _ := v.([]any)
			v = l[e]
		}
	}
	return v
}

// withPath returns a deep copy of obj with the value at p set to v (or removed).
func withPath(obj map[string]any, p []any, v any, remove bool) map[string]any {
	c := deepCopy(obj).(map[string]any)
	var parent any = c
	for _, e := range p[:len(p)-1] {
		parent = getPath(parent, []any{e})
	}
	switch last := p[len(p)-1].(type) {
	case string:
		m := parent.(map[string]any)
		if remove {
			delete(m, last)
		} else {
			m[last] = v
		}
	case int:
		l := parent.([]any)
		if remove {
			// removing an item is setting its parent to the list without it
			nl := append(append([]any{}, l[:last]...), l[last+1:]...)
			return withPath(c, p[:len(p)-1], nl, false)
		}
		l[last] = v
	}
	return c
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = deepCopy(e)
		}
		return c
	default:
		return v
	}
}

// TestIstioAgreesOnMutations: for documents derived from the seeds with one change
// each, navarch accepts exactly what Istio's own validation accepts.
func TestIstioAgreesOnMutations(t *testing.T) {
	o := istioOracle(t)
	docs := map[string][]byte{}
	for id, doc := range seedDocuments(t) {
		if istioRejectsCorpus[id] {
			continue
		}
		ms, err := mutations(doc)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for desc, m := range ms {
			docs[id+": "+desc] = m
		}
	}
	nv := judgeAll(docs)
	verdicts := o.judge(t, docs)
	mine := <-nv
	var disagree []string
	warned := 0
	for id := range docs {
		if oracleUnsure.MatchString(id) {
			continue
		}
		warnings, nerr := mine[id].warnings, mine[id].err
		v := verdicts[id]
		if nerr == nil && v.Valid {
			if d := sameWarnings(warnings, v); d != "" {
				disagree = append(disagree, id+"\n\t"+d)
			}
			if v.Warning != "" {
				warned++
			}
		}
		if (nerr == nil) != v.Valid {
			switch {
			case nerr != nil && strings.Contains(nerr.Error(), envoyFilterStrict):
				// Istio takes and drops the unknown fields of an EnvoyFilter's patch
				// (with a warning); navarch refuses them (docs/envoyfilter.md).
			case nerr != nil:
				disagree = append(disagree, fmt.Sprintf("%s\n\tIstio accepts; navarch: %v", id, nerr))
			default:
				disagree = append(disagree, fmt.Sprintf("%s\n\tnavarch accepts; Istio: %s", id, v.Error))
			}
		}
	}
	sort.Strings(disagree)
	t.Logf("%d documents, %d warned of, %d disagreements", len(docs), warned, len(disagree))
	for _, d := range disagree {
		t.Error(d)
	}
}

// meshConfigMap wraps a MeshConfig document (navarch's form) into Istio's ConfigMap,
// which istio-validate judges as istiod reads it.
func meshConfigMap(tb testing.TB, doc []byte) []byte {
	tb.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		tb.Fatal(err)
	}
	mesh, err := json.Marshal(obj["spec"])
	if err != nil {
		tb.Fatal(err)
	}
	cm, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": MeshConfigName, "namespace": MeshConfigNamespace},
		"data":     map[string]any{"mesh": string(mesh)}})
	if err != nil {
		tb.Fatal(err)
	}
	return cm
}

// envoyFilterStrict is in navarch's refusal of an EnvoyFilter patch value with
// fields the value's Envoy type does not have.
const envoyFilterStrict = "navarch refuses what it would drop"

// navarchStricter matches the fields of the mesh config where navarch refuses what
// Istio takes, on purpose (docs/mesh.md): Istio only warns of a bad extension
// provider and ignores it (failing the policies that name it); navarch's root
// namespace is fixed; navarch checks the default retries, export defaults,
// discovery selectors, a JSON access log format, the proxies' defaults and the DNS
// refresh rate, which Istio does not (or only where it reads them).
var navarchStricter = regexp.MustCompile(`^spec\.(extensionProviders|rootNamespace|defaultHttpRetryPolicy|default(Service|VirtualService|DestinationRule)ExportTo|discoverySelectors|accessLogFormat|accessLogEncoding|defaultConfig|dnsRefreshRate|trustDomain\b)`)

// strictDecoding matches navarch's refusals of what istiod's lenient reading of the
// mesh config lets through: unknown fields (istiod ignores them; navarch names them,
// and takes the fields Istio removed) and enums given as numbers (which istiod takes
// in any range; navarch by name, as the API server takes Istio's resources).
var strictDecoding = regexp.MustCompile(`unknown field|must be one of`)

// TestIstioAgreesOnTheMeshConfig holds navarch's validation of the mesh config to
// istiod's reading of it (ApplyMeshConfigDefaults: Istio's defaults, the user's
// fields, ValidateMeshConfig) on a seed and every mutation of it: navarch never
// takes what Istio refuses, and refuses what Istio takes only where it means to.
func TestIstioAgreesOnTheMeshConfig(t *testing.T) {
	o := istioOracle(t)
	seed, err := os.ReadFile(filepath.Join("testdata", "oracle-mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := mutations(seed)
	if err != nil {
		t.Fatal(err)
	}
	docs["seed"] = seed
	istio := map[string][]byte{}
	for id, doc := range docs {
		istio[id] = meshConfigMap(t, doc)
	}
	nv := judgeAll(docs)
	verdicts := o.judge(t, istio)
	mine := <-nv
	if _, err := navarchJudges(seed); !verdicts["seed"].Valid || err != nil {
		t.Fatalf("the seed: Istio %+v, navarch %v; both must take it", verdicts["seed"], err)
	}
	var disagree []string
	warned := 0
	for id := range docs {
		warnings, nerr := mine[id].warnings, mine[id].err
		v := verdicts[id]
		switch {
		case nerr == nil && !v.Valid:
			disagree = append(disagree, fmt.Sprintf("%s\n\tnavarch accepts; Istio: %s", id, v.Error))
		case nerr != nil && v.Valid && !navarchStricter.MatchString(id) && !strictDecoding.MatchString(nerr.Error()):
			disagree = append(disagree, fmt.Sprintf("%s\n\tIstio accepts; navarch: %v", id, nerr))
		case nerr == nil && v.Valid:
			if d := sameWarnings(warnings, v); d != "" {
				disagree = append(disagree, id+"\n\t"+d)
			}
			if v.Warning != "" {
				warned++
			}
		}
	}
	sort.Strings(disagree)
	t.Logf("%d documents, %d warned of, %d disagreements", len(docs), warned, len(disagree))
	for _, d := range disagree {
		t.Error(d)
	}
}
