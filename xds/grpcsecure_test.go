package xds

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/navarch/navarch/e2e/grpcapp"
)

// TestGRPCMutualTLSAndAuthorization: a proxyless server and clients with certificates
// of the mesh: over STRICT the RPC succeeds over mTLS and the server sees the client's
// SPIFFE ID; a plaintext client fails; a DENY policy on one principal denies that
// client and no other.
func TestGRPCMutualTLSAndAuthorization(t *testing.T) {
	ca, err := grpcapp.NewTestCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, sa := range []string{"ratings", "client", "intruder"} {
		if err := ca.WriteWorkload(filepath.Join(dir, sa), "default", sa); err != nil {
			t.Fatal(err)
		}
	}
	src := newFakeSource(snapshotOf(t))
	_, cc := startServer(t, src)
	xdsAddr := cc.Target()
	server, err := grpcapp.StartXDSBackend("secure", grpcapp.BootstrapWith(grpcapp.BootstrapOptions{
		Servers: []string{xdsAddr}, Namespace: "default", Name: "ratings-1",
		Labels: map[string]string{"app": "ratings"}, CertDir: filepath.Join(dir, "ratings")}))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Stop()
	mesh := grpcapp.StrictRatingsMesh("default", server.Port)
	src.set(snapshotOf(t, mesh))
	target := "xds:///ratings.default.svc.cluster.local:9090"
	// dial makes a client for service account sa (with xDS credentials when secure)
	// and sends 5 RPCs, retrying for a while when wantAnswers and they fail.
	dial := func(sa string, secure, wantAnswers bool) grpcapp.Tally {
		t.Helper()
		boot := grpcapp.BootstrapWith(grpcapp.BootstrapOptions{Servers: []string{xdsAddr}, Namespace: "default",
			Name: sa + "-1", CertDir: filepath.Join(dir, sa)})
		conn, err := grpcapp.Dial(boot, target)
		if secure {
			conn, err = grpcapp.DialSecure(boot, target)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			tl := grpcapp.Call(ctx, conn, 5)
			if !wantAnswers || tl.By["secure"] == 5 || ctx.Err() != nil {
				return tl
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(t, "the server serving", server.Serving)

	client := dial("client", true, true)
	if client.By["secure"] != 5 {
		t.Fatalf("mTLS client: %v %v, want 5 answers", client.By, client.Failed)
	}
	if want := "spiffe://cluster.local/ns/default/sa/client"; client.CallerAs[want] != 5 {
		t.Fatalf("the server saw the caller as %v, want %s", client.CallerAs, want)
	}
	if plain := dial("plain", false, false); plain.By["secure"] != 0 || plain.Failed[codes.Unavailable] != 5 {
		t.Fatalf("a plaintext client of a STRICT server: %v %v, want 5 failures (Unavailable)", plain.By, plain.Failed)
	}

	const deny = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-intruders, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/intruder]}}]}]
`
	// intruderGets waits until the intruder's RPCs answer (or fail PermissionDenied).
	intruderGets := func(what string, answered bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			intruder := dial("intruder", true, false)
			if answered && intruder.By["secure"] == 5 || !answered && intruder.Failed[codes.PermissionDenied] == 5 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the intruder's RPCs %v %v", what, intruder.By, intruder.Failed)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	src.set(snapshotOf(t, mesh, deny))
	intruderGets("the denied principal", false)
	if again := dial("client", true, true); again.By["secure"] != 5 {
		t.Fatalf("another principal after the DENY: %v %v, want answers", again.By, again.Failed)
	}

	// A policy written for the trust domain the mesh moves from denies the intruder
	// (whose certificate is of cluster.local) only once the mesh config names that
	// domain an alias.
	oldDomain := strings.Replace(deny, "[cluster.local/ns/default/sa/intruder]", "[old.example/ns/default/sa/intruder]", 1)
	src.set(snapshotOf(t, mesh, oldDomain))
	intruderGets("a DENY of another trust domain", true)
	src.set(snapshotOf(t, mesh, oldDomain, "apiVersion: navarch.io/v1\nkind: MeshConfig\nmetadata: {name: istio, namespace: istio-system}\nspec: {trustDomainAliases: [old.example]}\n"))
	intruderGets("a DENY of a trust domain alias", false)

	// PERMISSIVE is served as plaintext: now the plaintext client gets answers.
	src.set(snapshotOf(t, strings.Replace(mesh, "mode: STRICT", "mode: PERMISSIVE", 1)))
	if plain := dial("plain", false, true); plain.By["secure"] != 5 {
		t.Fatalf("a plaintext client of a PERMISSIVE server: %v %v, want answers", plain.By, plain.Failed)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
