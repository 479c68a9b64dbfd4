package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

var ratings = Identity{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "ratings"}

// issue signs a fresh CSR for ratings and returns the leaf and its intermediates.
func issue(t *testing.T, a *Authority) (*x509.Certificate, []*x509.Certificate) {
	t.Helper()
	chain, err := a.Sign(csrFor(t, p256(t), nil), ratings, 0)
	if err != nil {
		t.Fatal(err)
	}
	certs := parseChain(t, chain)
	return certs[0], certs[1 : len(certs)-1]
}

// waitFor polls cond for up to 5 s: another node learns of a change by its watch.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRotation: during the overlap a certificate from the old root still verifies
// against the bundle and new ones chain to the new root; after finishing, the old
// one no longer verifies. Another node sharing the store follows every step.
func TestRotation(t *testing.T) {
	st := openStore(t)
	kek := GenerateKEK()
	n1 := startAuthority(t, st, DefaultConfig(), kek)
	n2 := startAuthority(t, st, DefaultConfig(), kek)
	ctx := context.Background()
	oldRoot := n1.TrustBundle()[0]
	if !n2.TrustBundle()[0].Equal(oldRoot) {
		t.Fatal("two nodes on one store have different roots: the CA was created twice")
	}
	oldLeaf, oldInters := issue(t, n1)
	changed := n2.Changed()

	if err := n1.FinishRotation(ctx); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "no rotation to finish") {
		t.Fatalf("finish without a rotation = %v, want a conflict", err)
	}
	if err := n1.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	bundle := n1.TrustBundle()
	if len(bundle) != 2 || !bundle[1].Equal(oldRoot) || bundle[0].Equal(oldRoot) {
		t.Fatalf("bundle after rotate: %d roots; want the new root then the old one", len(bundle))
	}
	newRoot := bundle[0]
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the other node was not told of the rotation")
	}
	if b := n2.TrustBundle(); len(b) != 2 || !b[0].Equal(newRoot) {
		t.Fatal("the other node does not have the new bundle")
	}
	if err := verifyAgainst(oldLeaf, oldInters, n2.TrustBundle()); err != nil {
		t.Fatalf("during the overlap, a certificate from the old root does not verify against the bundle: %v", err)
	}
	newLeaf, newInters := issue(t, n2)
	if err := verifyAgainst(newLeaf, newInters, []*x509.Certificate{newRoot}); err != nil {
		t.Fatalf("a new certificate does not chain to the new root: %v", err)
	}
	if err := verifyAgainst(newLeaf, newInters, []*x509.Certificate{oldRoot}); err == nil {
		t.Fatal("a new certificate chains to the old root")
	}
	if _, err := n1.AuthenticateCertificate(append([]*x509.Certificate{oldLeaf}, oldInters...)); err != nil {
		t.Fatalf("during the overlap an old certificate does not authenticate: %v", err)
	}
	if err := n2.Rotate(ctx); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "rotate --finish") {
		t.Fatalf("rotate during a rotation = %v, want a conflict telling to finish", err)
	}

	if err := n2.FinishRotation(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first node drops the old root", func() bool { return len(n1.TrustBundle()) == 1 })
	if err := verifyAgainst(oldLeaf, oldInters, n1.TrustBundle()); err == nil {
		t.Fatal("after finishing, a certificate from the old root still verifies against the bundle")
	}
	if _, err := n1.AuthenticateCertificate(append([]*x509.Certificate{oldLeaf}, oldInters...)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("after finishing, an old certificate authenticates: %v", err)
	}
	if err := verifyAgainst(newLeaf, newInters, n1.TrustBundle()); err != nil {
		t.Fatalf("after finishing, a new certificate does not verify: %v", err)
	}
	info, err := n1.Info()
	if err != nil || info.Rotating || len(info.Roots) != 1 || info.Roots[0].Fingerprint != Fingerprint(newRoot) {
		t.Fatalf("info after finishing: %+v, %v", info, err)
	}
}

// TestBootstrapRace: nodes starting together create exactly one CA.
func TestBootstrapRace(t *testing.T) {
	st := openStore(t)
	kek := GenerateKEK()
	done := make(chan *Authority, 3)
	for i := 0; i < 3; i++ {
		go func() { done <- startAuthority(t, st, DefaultConfig(), kek) }()
	}
	var roots []string
	for i := 0; i < 3; i++ {
		roots = append(roots, Fingerprint((<-done).TrustBundle()[0]))
	}
	if roots[0] != roots[1] || roots[1] != roots[2] {
		t.Fatalf("roots %v: the nodes created more than one CA", roots)
	}
}

func TestTrustDomainMustMatchTheCluster(t *testing.T) {
	st := openStore(t)
	kek := GenerateKEK()
	startAuthority(t, st, DefaultConfig(), kek)
	cfg := DefaultConfig()
	cfg.TrustDomain = "example.org"
	b, err := New(cfg, st.Client(), kek, applied(st), testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), `trust domain is "cluster.local", this node was started with --trust-domain "example.org"`) {
		t.Fatalf("Run = %v", err)
	}
}
