package node

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"testing"
	"time"

	"github.com/navarch/navarch/ca"
	"github.com/navarch/navarch/store"
	"github.com/navarch/navarch/xds"
)

// TestCAForXDS: the secrets SDS serves are cached per identity, for that identity,
// and re-issued when the trust bundle changes.
func TestCAForXDS(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := store.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ClientURL, cfg.PeerURL = store.AnyLoopbackURL, store.AnyLoopbackURL
	cfg.UnsafeNoFsync = true
	st, err := store.Open(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := ca.New(ca.DefaultConfig(), st.Client(), ca.GenerateKEK(), store.Layered{St: st, Spaces: []store.Space{store.ConfigSpace}}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()

	src := newCAForXDS(a, time.Hour)
	id := xds.Identity{Namespace: "bookinfo", ServiceAccount: "ratings"}
	chain, key, expires, err := src.WorkloadSecret(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(chain)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.URIs[0].String() != "spiffe://cluster.local/ns/bookinfo/sa/ratings" || len(key) == 0 || !leaf.NotAfter.Equal(expires) {
		t.Fatalf("secret for %v, expires %s (certificate %s)", leaf.URIs, expires, leaf.NotAfter)
	}
	again, _, _, _ := src.WorkloadSecret(ctx, id)
	if string(again) != string(chain) {
		t.Fatal("a second request issued a new certificate: not cached")
	}
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	rotated, _, _, _ := src.WorkloadSecret(ctx, id)
	if string(rotated) == string(chain) {
		t.Fatal("after a rotation the cached certificate is still served")
	}
	if string(src.TrustBundlePEM()) != a.TrustBundlePEM() {
		t.Fatal("the trust bundle is not the CA's")
	}
}
