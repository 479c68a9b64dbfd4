package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/corpus"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// snapshotOf decodes YAML documents into a snapshot, as if applied to the store.
func snapshotOf(t testing.TB, docs ...string) *registry.Snapshot {
	t.Helper()
	return snapshotAt(t, 1, docs...)
}

// snapshotAt is snapshotOf at store revision rev.
func snapshotAt(t testing.TB, rev int64, docs ...string) *registry.Snapshot {
	t.Helper()
	var entries []store.Entry
	for i, d := range docs {
		rs, _, err := api.Decode("doc", []byte(d), "")
		if err != nil {
			t.Fatalf("decoding document %d: %v", i, err)
		}
		for _, r := range rs {
			entries = append(entries, store.Entry{Space: store.ConfigSpace, Resource: r})
		}
	}
	return registry.NewSnapshot(entries, rev, "cluster.local")
}

func grpcProxy(ns string, labels map[string]string) *Proxy {
	return &Proxy{ID: "sidecar~10.0.0.1~client." + ns + "~" + ns + ".svc.cluster.local", Type: TypeSidecar, IP: "10.0.0.1",
		Namespace: ns, Labels: labels, Generator: GeneratorGRPC}
}

// envoySidecar builds what an Envoy sidecar (istio-proxy) in namespace ns with
// labels gets from snap; a build error fails the test.
func envoySidecar(t *testing.T, snap *registry.Snapshot, ns string, labels map[string]string) map[string]*TypeSet {
	t.Helper()
	p := grpcProxy(ns, labels)
	p.Generator, p.IstioProxy = "", true
	sets, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	return sets
}

// resourceOf unmarshals the resource of type typ named name into msg.
func resourceOf(t *testing.T, sets map[string]*TypeSet, typ, name string, msg proto.Message) {
	t.Helper()
	r := sets[typ].ByName[name]
	if r == nil {
		t.Fatalf("no %s %s", shortType(typ), name)
	}
	if err := r.Body.UnmarshalTo(msg); err != nil {
		t.Fatal(err)
	}
}

// dump renders built resources as YAML, by type and name, for golden files.
func dump(t *testing.T, sets map[string]*TypeSet) []byte {
	t.Helper()
	var types []string
	for typ := range sets {
		types = append(types, typ)
	}
	sort.Strings(types)
	out := map[string][]json.RawMessage{}
	for _, typ := range types {
		set := sets[typ]
		items := []json.RawMessage{}
		for _, name := range set.Names() {
			r := set.ByName[name]
			msg, err := r.Body.UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			if err := validateUnpacked(msg); err != nil {
				t.Errorf("%s %s: invalid: %v", shortType(typ), name, err)
			}
			b, err := protojson.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			item, _ := json.Marshal(map[string]any{"name": name, "version": r.Version, "resource": json.RawMessage(b)})
			items = append(items, item)
		}
		out[shortType(typ)] = items
	}
	j, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./xds -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what translation builds now; if the change is intended, run go test ./xds -update and review the diff.\n%s",
			path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestTranslateCorpus translates every file of Istio's test corpus for a proxyless
// gRPC client and for an Envoy sidecar in the namespace the file configures, checks
// every resource passes its proto's Validate (build drops and reports those that do
// not), and compares the results with testdata/<file>.golden.yaml and
// testdata/<file>.sidecar.golden.yaml.
func TestTranslateCorpus(t *testing.T) {
	for _, f := range corpus.Files(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rs, _, err := api.Decode(filepath.Base(f), data, "")
			if err != nil {
				t.Fatalf("the corpus must decode: %v", err)
			}
			ns := api.DefaultNamespace
			var entries []store.Entry
			for _, r := range rs {
				entries = append(entries, store.Entry{Space: store.ConfigSpace, Resource: r})
				ns = r.Meta.Namespace
			}
			snap := registry.NewSnapshot(entries, 1, "cluster.local")
			base := strings.TrimSuffix(filepath.Base(f), ".yaml")
			grpc := grpcProxy(ns, map[string]string{"version": "v1"})
			sets, err := grpcProfile().build(newContext(snap, grpc, "cluster.local", "istio-system"))
			if err != nil {
				t.Errorf("building for proxyless gRPC: %v", err)
			}
			checkGolden(t, filepath.Join("testdata", base+".golden.yaml"), dump(t, sets))
			// Envoys are istio-proxy, as istio-agent runs them (Istio's filters).
			sidecar := *grpc
			sidecar.Generator, sidecar.IstioProxy = "", true
			sets, err = sidecarProfile().build(newContext(snap, &sidecar, "cluster.local", "istio-system"))
			if err != nil {
				t.Errorf("building for an Envoy sidecar: %v", err)
			}
			checkGolden(t, filepath.Join("testdata", base+".sidecar.golden.yaml"), dump(t, sets))

			// Each Gateway of the file, for a gateway proxy its selector picks.
			var gateways []byte
			for _, r := range rs {
				if r.Kind != api.Gateway {
					continue
				}
				gw := &Proxy{ID: "router~10.0.0.2~gateway." + r.Meta.Namespace + "~" + r.Meta.Namespace + ".svc.cluster.local", Type: TypeRouter,
					IP: "10.0.0.2", Namespace: r.Meta.Namespace, Labels: r.Spec.(*networking.Gateway).Selector, IstioProxy: true}
				sets, err = gatewayProfile().build(newContext(snap, gw, "cluster.local", "istio-system"))
				if err != nil {
					t.Errorf("building for gateway %s/%s: %v", r.Meta.Namespace, r.Meta.Name, err)
				}
				gateways = append(gateways, "# Gateway "+r.Meta.Namespace+"/"+r.Meta.Name+"\n"...)
				gateways = append(gateways, dump(t, sets)...)
			}
			if gateways != nil {
				checkGolden(t, filepath.Join("testdata", base+".gateway.golden.yaml"), gateways)
			}
		})
	}
}
