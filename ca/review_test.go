package ca

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// reviewer answers TokenReviews from a table, as a Kubernetes API server would.
type reviewer struct {
	accounts map[string][2]string // token -> namespace, service account
	down     bool
	asked    int
}

func (r *reviewer) ReviewToken(_ context.Context, token string) (string, string, string, error) {
	r.asked++
	if r.down {
		return "", "", "", errors.New("dial tcp 127.0.0.1:6443: connection refused")
	}
	if a, ok := r.accounts[token]; ok {
		return a[0], a[1], "", nil
	}
	return "", "", "invalid bearer token", nil
}

func TestKubernetesTokens(t *testing.T) {
	a := memAuthority(t, DefaultConfig())
	const podToken = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	if _, err := a.Authenticate(bearer(podToken)); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "malformed join token") {
		t.Fatalf("without a reviewer a JWT is no credential: %v", err)
	}
	r := &reviewer{accounts: map[string][2]string{podToken: {"shop", "reviews"}}}
	a.SetTokenReviewer(r)

	id, err := a.Authenticate(bearer(podToken))
	if err != nil || id.SPIFFE() != "spiffe://cluster.local/ns/shop/sa/reviews" {
		t.Fatalf("a reviewed token: %v, %v; want the service account's identity", id, err)
	}
	if _, err := a.Authenticate(bearer("eyJ.eyJ.forged")); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "refused: invalid bearer token") {
		t.Fatalf("a token the cluster refuses: %v; want Unauthenticated with its reason", err)
	}
	asked := r.asked
	secret := strings.Repeat("b", 64)
	a.tokens.set(&tokenRecord{ID: strings.Repeat("a", 16), Hash: hashSecret(secret), Namespace: "vms", ServiceAccount: "ratings",
		WorkloadGroup: "vms/ratings", Expires: time.Now().Add(time.Hour)})
	if id, err := a.Authenticate(bearer(strings.Repeat("a", 16) + "." + secret)); err != nil || id.ServiceAccount != "ratings" {
		t.Fatalf("a join token with a reviewer set: %v, %v; want it authenticated as a join token", id, err)
	}
	if r.asked != asked {
		t.Fatal("a join token was sent to the Kubernetes API server")
	}
	r.down = true
	_, err = a.Authenticate(bearer(podToken))
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("an unreachable API server: %v; want an error that is not the caller's fault", err)
	}
}
