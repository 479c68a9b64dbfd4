package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestParseKEK(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, 32)
	hexKey := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		data []byte
		err  string
	}{
		{name: "64 hex digits", data: []byte(hexKey)},
		{name: "hex with a trailing newline", data: []byte(hexKey + "\n")},
		{name: "32 raw bytes", data: raw},
		{name: "too short", data: []byte("abcd"), err: "must be 32 bytes, raw or as 64 hex digits; got 4 bytes"},
		{name: "64 characters that are not hex", data: []byte(strings.Repeat("zz", 32)), err: "got 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKEK(tt.data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseKEK = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(k.key, raw) {
				t.Fatalf("ParseKEK = %x, %v", k.key, err)
			}
		})
	}
}

func TestKEKNeverPrints(t *testing.T) {
	k := GenerateKEK()
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "kek", k)
	js, _ := json.Marshal(struct{ K KEK }{k})
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", k), "%+v": fmt.Sprintf("%+v", struct{ K KEK }{k}), "%#v": fmt.Sprintf("%#v", k),
		"%s": fmt.Sprintf("[%s]", k), "slog": logs.String(), "json": string(js),
	} {
		if strings.Contains(s, k.Hex()) || !strings.Contains(s, k.ID()) {
			t.Errorf("%s prints %q: want the id %s and never the key", name, s, k.ID())
		}
	}
}

func TestSealOpen(t *testing.T) {
	k, other := GenerateKEK(), GenerateKEK()
	sealed, err := k.seal([]byte("signing key"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := k.open(sealed, []byte("aad")); err != nil || string(pt) != "signing key" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	if _, err := other.open(sealed, []byte("aad")); err != errWrongKEK {
		t.Errorf("open with another KEK = %v, want errWrongKEK", err)
	}
	if _, err := k.open(sealed, []byte("other place")); err == nil {
		t.Error("opened with another AAD: the ciphertext is not bound to where it is stored")
	}
}

// TestStoredKeyIsEncrypted: what etcd holds has no private key in the clear, and a
// node with another KEK cannot use it: it refuses to start, naming both KEK ids.
func TestStoredKeyIsEncrypted(t *testing.T) {
	st := openStore(t)
	kek := GenerateKEK()
	a := startAuthority(t, st, DefaultConfig(), kek)

	resp, err := st.Client().Get(context.Background(), Prefix, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v (%d keys)", Prefix, err, len(resp.Kvs))
	}
	value := resp.Kvs[0].Value
	if bytes.Contains(value, []byte("PRIVATE KEY")) || bytes.Contains(value, []byte(kek.Hex())) {
		t.Fatal("the CA record holds a PEM private key or the KEK")
	}
	var rec record
	if err := json.Unmarshal(value, &rec); err != nil {
		t.Fatal(err)
	}
	sealed, _ := base64.StdEncoding.DecodeString(rec.SealedKey)
	scalar, err := a.cur.Load().key.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, scalar) || bytes.Contains(value, scalar) || bytes.Contains(value, []byte(base64.StdEncoding.EncodeToString(scalar))) {
		t.Fatal("the stored record contains the private key's bytes")
	}
	if rec.KEKID != kek.ID() {
		t.Errorf("record KEK id %s, want %s", rec.KEKID, kek.ID())
	}

	wrong := GenerateKEK()
	b, err := New(DefaultConfig(), st.Client(), wrong, applied(st), testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = b.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), kek.ID()) || !strings.Contains(err.Error(), wrong.ID()) || !strings.Contains(err.Error(), "--ca-kek-file") {
		t.Fatalf("a node with another KEK: Run = %v; want an error naming both KEK ids and --ca-kek-file", err)
	}
}
