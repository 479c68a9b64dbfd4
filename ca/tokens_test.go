package ca

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

const ratingsGroup = `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings, namespace: bookinfo}
spec:
  metadata: {labels: {app: ratings}}
  template: {serviceAccount: ratings-sa}
`

const plainGroup = `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: plain, namespace: default}
spec:
  metadata: {labels: {app: plain}}
  template: {}
`

func bearer(token string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
}

func TestJoinTokens(t *testing.T) {
	st := openStore(t)
	kek := GenerateKEK()
	n1 := startAuthority(t, st, DefaultConfig(), kek)
	n2 := startAuthority(t, st, DefaultConfig(), kek)
	applyGroup(t, st, ratingsGroup)
	applyGroup(t, st, plainGroup)
	ctx := context.Background()

	token, info, err := n1.CreateToken(ctx, "bookinfo/ratings", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := "spiffe://cluster.local/ns/bookinfo/sa/ratings-sa"
	if info.Identity.SPIFFE() != want || info.WorkloadGroup != "bookinfo/ratings" {
		t.Fatalf("token info %+v, want identity %s", info, want)
	}
	if _, plain, err := n1.CreateToken(ctx, "plain", time.Hour); err != nil || plain.Identity.SPIFFE() != "spiffe://cluster.local/ns/default/sa/default" {
		t.Fatalf("a group without a service account: %+v, %v; want sa default in namespace default", plain, err)
	}

	t.Run("a token authenticates as its group's identity on every node", func(t *testing.T) {
		for _, a := range []*Authority{n1, n2} {
			id, err := a.Authenticate(bearer(token))
			if err != nil || id.SPIFFE() != want {
				t.Fatalf("Authenticate = %s, %v; want %s", id, err, want)
			}
		}
	})
	t.Run("etcd holds a hash, not the token", func(t *testing.T) {
		resp, err := st.Client().Get(ctx, TokenPrefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		_, secret, _ := strings.Cut(token, ".")
		for _, kv := range resp.Kvs {
			if strings.Contains(string(kv.Value), secret) {
				t.Fatalf("%s holds the token's secret", kv.Key)
			}
		}
	})
	t.Run("refusals", func(t *testing.T) {
		id, _, _ := strings.Cut(token, ".")
		short, _, err := n1.CreateToken(ctx, "bookinfo/ratings", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		tests := []struct{ name, token, want string }{
			{"a wrong secret", id + "." + strings.Repeat("0", 64), "wrong secret"},
			{"an unknown id", strings.Repeat("1", 16) + "." + strings.Repeat("0", 64), "does not exist"},
			{"a malformed token", "hello", "malformed join token"},
			{"an expired token", short, "expired at"},
		}
		for _, tt := range tests {
			_, err := n2.Authenticate(bearer(tt.token))
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: Authenticate = %v, want unauthenticated, %q", tt.name, err, tt.want)
			}
		}
	})
	t.Run("creating a token needs the group and a bounded lifetime", func(t *testing.T) {
		if _, _, err := n1.CreateToken(ctx, "bookinfo/nope", time.Hour); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "WorkloadGroup bookinfo/nope") {
			t.Errorf("a missing group: %v", err)
		}
		if _, _, err := n1.CreateToken(ctx, "bookinfo/ratings", 365*24*time.Hour); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "at most 720h0m0s") {
			t.Errorf("a year-long token: %v", err)
		}
	})
	t.Run("a revoked token no longer authenticates, on any node", func(t *testing.T) {
		id, _, _ := strings.Cut(token, ".")
		if _, err := n2.RevokeToken(ctx, id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the other node sees the revocation", func() bool {
			_, err := n1.Authenticate(bearer(token))
			return err != nil
		})
		if _, err := n1.Authenticate(bearer(token)); !strings.Contains(err.Error(), "was revoked") {
			t.Fatalf("Authenticate after revoke = %v", err)
		}
		if _, err := n1.RevokeToken(ctx, strings.Repeat("2", 16)); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoking an unknown token = %v", err)
		}
		list, err := n1.Tokens(ctx)
		if err != nil || len(list) != 3 || !list[0].Revoked || list[0].ID != id {
			t.Fatalf("Tokens = %+v, %v; want three, the first revoked", list, err)
		}
	})
}

// TestJoinTokenForAMirroredGroup: a WorkloadGroup that a Kubernetes cluster's
// Istio configuration gives (mirrored into a registry source) takes join tokens
// when the authority reads that source after what navarch apply wrote.
func TestJoinTokenForAMirroredGroup(t *testing.T) {
	st := openStore(t)
	mirrored := store.RegistrySpace("kubernetes.c1.config")
	rs, _, err := api.Decode("test", []byte(ratingsGroup), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.Apply(ctx, mirrored, rs); err != nil {
		t.Fatal(err)
	}
	kek := GenerateKEK()
	if _, _, err := startAuthority(t, st, DefaultConfig(), kek).CreateToken(ctx, "bookinfo/ratings", time.Hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("reading what was applied only: %v, want ErrNotFound", err)
	}
	a := startAuthorityReading(t, st, DefaultConfig(), kek, store.Layered{St: st, Spaces: []store.Space{store.ConfigSpace, mirrored}})
	_, info, err := a.CreateToken(ctx, "bookinfo/ratings", time.Hour)
	if err != nil || info.Identity.SPIFFE() != "spiffe://cluster.local/ns/bookinfo/sa/ratings-sa" {
		t.Errorf("reading the mirrored source too: %+v, %v", info, err)
	}
}

func TestAuthenticateWithoutCredentials(t *testing.T) {
	a := memAuthority(t, DefaultConfig())
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no metadata, no peer", context.Background(), "no credential"},
		{"another scheme", metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Basic abc")), `must be "Bearer <join token>"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.Authenticate(tt.ctx); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Authenticate = %v, want %q", err, tt.want)
			}
		})
	}
}
