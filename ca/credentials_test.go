package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestGatewayCredentials: a credential is checked before it is stored, its key is
// sealed in etcd, every node sees it (and its removal) through its watch and hands
// out the opened key, and Changed fires on each change.
func TestGatewayCredentials(t *testing.T) {
	st := openStore(t)
	kek := GenerateKEK()
	n1 := startAuthority(t, st, DefaultConfig(), kek)
	n2 := startAuthority(t, st, DefaultConfig(), kek)
	ctx := context.Background()

	key, other := p256(t), p256(t)
	cert := testCA(t, "shop.example.com", nil, key, key, func(c *x509.Certificate) {
		c.IsCA, c.DNSNames = false, []string{"shop.example.com"}
	})
	chainPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})

	refusals := []struct {
		name           string
		ns, credName   string
		chain, key, ca []byte
		want           string
	}{
		{"a key of another certificate", "edge", "shop", chainPEM, keyPEM(t, other), nil, "is not the key of the certificate"},
		{"no certificate", "edge", "shop", []byte("garbage"), keyPEM(t, key), nil, "cert: no PEM CERTIFICATE block"},
		{"no key", "edge", "shop", chainPEM, []byte("-----BEGIN NOTHING-----\n-----END NOTHING-----\n"), nil, "key: unexpected PEM block"},
		{"a CA that is not PEM", "edge", "shop", chainPEM, keyPEM(t, key), []byte("x"), "ca: no PEM CERTIFICATE block"},
		{"a bad name", "edge", "Shop_Cert", chainPEM, keyPEM(t, key), nil, "want a DNS label namespace"},
	}
	for _, r := range refusals {
		if _, err := n1.PutCredential(ctx, r.ns, r.credName, r.chain, r.key, r.ca); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: %v, want refused with %q", r.name, err, r.want)
		}
	}
	if got, _ := st.Client().Get(ctx, CredentialPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); got.Count != 0 {
		t.Fatalf("refused credentials were stored: %d", got.Count)
	}

	changed := n2.Changed()
	info, err := n1.PutCredential(ctx, "edge", "shop", chainPEM, keyPEM(t, key), chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	if info.Fingerprint != Fingerprint(cert) || !info.HasCA || info.DNSNames[0] != "shop.example.com" {
		t.Fatalf("info %+v", info)
	}
	raw, _ := st.Client().Get(ctx, credentialKey("edge", "shop"))
	if bytes.Contains(raw.Kvs[0].Value, []byte("PRIVATE KEY")) || bytes.Contains(raw.Kvs[0].Value, keyPEM(t, key)[30:60]) {
		t.Fatal("the private key is in etcd in the clear")
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the other node's Changed did not fire")
	}
	got, ok := n2.Credential("edge", "shop")
	if !ok || !bytes.Equal(got.KeyPEM, keyPEM(t, key)) || !bytes.Equal(got.ChainPEM, chainPEM) || !bytes.Equal(got.CAPEM, chainPEM) {
		t.Fatalf("the other node's copy: ok %v", ok)
	}
	if _, ok := n2.Credential("other", "shop"); ok {
		t.Fatal("a credential of another namespace was found")
	}
	list, err := n2.Credentials(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "shop" {
		t.Fatalf("list: %v %+v", err, list)
	}

	// A sealed key copied to another credential's key does not open there.
	var rec credentialRecord
	if err := json.Unmarshal(raw.Kvs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	rec.Namespace = "thief"
	moved, _ := json.Marshal(rec)
	if _, err := st.Client().Put(ctx, credentialKey("thief", "shop"), string(moved)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, ok := n2.credentials.get(credentialKey("thief", "shop")); ok && r != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the copied record never reached the other node")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := n2.Credential("thief", "shop"); ok {
		t.Fatal("a sealed key opened under another credential's name")
	}

	changed = n2.Changed()
	if err := n1.DeleteCredential(ctx, "edge", "shop"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the deletion did not fire Changed on the other node")
	}
	if _, ok := n2.Credential("edge", "shop"); ok {
		t.Fatal("the other node still hands out a deleted credential")
	}
	if err := n1.DeleteCredential(ctx, "edge", "shop"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v, want not found", err)
	}
}
