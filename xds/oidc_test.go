package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/navarch/navarch/registry"
)

// oidcProviders returns the jwt_authn providers an Envoy sidecar with app=orders in
// namespace shop gets from snap, and the build's errors.
func oidcProviders(t *testing.T, snap *registry.Snapshot) (map[string]*jwtv3.JwtProvider, error) {
	t.Helper()
	labels := map[string]string{"app": "orders"}
	sidecar := grpcProxy("shop", labels)
	sidecar.Generator = ""
	ctx := newContext(snap, sidecar, "cluster.local", "istio-system")
	filters := rbacFilters(ctx, "shop", labels)
	if len(filters) == 0 || filters[0].Name != jwtFilter {
		t.Fatalf("want a jwt_authn filter first, got %v", filters)
	}
	var jwt jwtv3.JwtAuthentication
	if err := filters[0].GetTypedConfig().UnmarshalTo(&jwt); err != nil {
		t.Fatal(err)
	}
	if err := jwt.Validate(); err != nil {
		t.Fatalf("invalid jwt_authn config: %v", err)
	}
	var err error
	if len(ctx.errs) > 0 {
		err = fmt.Errorf("%v", ctx.errs)
	}
	return jwt.Providers, err
}

// TestIssuerDiscovery checks OpenID discovery for JWT rules that name only an issuer:
// until the issuer's document has been read its tokens are refused, without an error;
// then Envoy fetches the key set the document names, through the mesh; an issuer
// whose document cannot be read, or that is no URL, is reported and refused.
func TestIssuerDiscovery(t *testing.T) {
	var reads atomic.Int32
	idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"https://idp.example.com/keys","id_token_signing_alg_values_supported":["ES256"]}`, "https://"+r.Host)
		case "/nokeys/.well-known/openid-configuration":
			fmt.Fprint(w, `{"issuer":"x"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer idp.Close()
	good, broken, nokeys, notURL := idp.URL, idp.URL+"/broken/", idp.URL+"/nokeys", "testing@secure.istio.io"

	config := []string{`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: idp, namespace: shop}
spec:
  hosts: [idp.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: TLS}]
`, fmt.Sprintf(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  jwtRules:
  - issuer: %s
  - issuer: %s
  - issuer: %s
  - issuer: %s
`, good, broken, nokeys, notURL)}
	src := newFakeSource(snapshotOf(t, config...))
	d := NewIssuerDiscovery(src, idp.Client(), slog.New(slog.DiscardHandler))

	before := d.Snapshot()
	providers, err := oidcProviders(t, before)
	if err != nil {
		t.Errorf("issuers not read yet are no error: %v", err)
	}
	for _, iss := range []string{good, broken, nokeys, notURL} {
		if got := providers[iss].GetLocalJwks().GetInlineString(); got != unusableJWKS {
			t.Errorf("%s before discovery: want the unusable key set, got %v", iss, providers[iss])
		}
	}
	if reads.Load() != 0 {
		t.Fatal("documents were read before Run")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	select {
	case <-d.Changes():
	case <-time.After(20 * time.Second):
		t.Fatal("discovery never reported what it found")
	}
	after := d.Snapshot()
	if after == before || d.Snapshot() != after {
		t.Fatal("want a new snapshot once discovery found something, and the same one after")
	}
	providers, err = oidcProviders(t, after)
	remote := providers[good].GetRemoteJwks().GetHttpUri()
	if remote.GetUri() != "https://idp.example.com/keys" || remote.GetCluster() != "outbound|443||idp.example.com" {
		t.Errorf("discovered issuer: want the document's jwks_uri through the mesh, got %v", providers[good])
	}
	for iss, why := range map[string]string{broken: "404", nokeys: "has no jwks_uri", notURL: "not an http(s) URL"} {
		if got := providers[iss].GetLocalJwks().GetInlineString(); got != unusableJWKS {
			t.Errorf("%s: want the unusable key set, got %v", iss, providers[iss])
		}
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: want %q reported, got %v", iss, why, err)
		}
	}
	if n := reads.Load(); n != 3 {
		t.Errorf("the server was asked %d times, want once per URL issuer", n)
	}

	// A change of the source's snapshot passes through, with what was found.
	src.set(snapshotOf(t, append(config, reviewsSE)...))
	select {
	case <-d.Changes():
	case <-time.After(20 * time.Second):
		t.Fatal("a change of the source was not passed on")
	}
	next := d.Snapshot()
	if next == after || next.Service("reviews.default.svc.cluster.local", "default") == nil {
		t.Fatal("want the source's new snapshot")
	}
	if found, ok := next.Issuer(good); !ok || found.JWKSURI != "https://idp.example.com/keys" {
		t.Errorf("the new snapshot lost what was discovered: %+v", found)
	}
}
