package ca

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/navarch/navarch/api"
)

// Gateway credentials are the TLS key pairs gateways serve with: what a Gateway
// server's credentialName names, as Istio reads them from Kubernetes Secrets. Each is
// stored at CredentialPrefix+<namespace>/<name>, its private key sealed with the KEK
// (bound to that key, so a sealed key moved elsewhere does not open). Every node
// watches them; SDS gives one only to a gateway proxy that authenticated in the
// credential's namespace.

// CredentialPrefix holds gateway credentials.
const CredentialPrefix = Prefix + "credentials/"

// credentialRecord is a credential as stored.
type credentialRecord struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Chain     string    `json:"chain"`        // PEM: the certificate and its intermediates
	SealedKey string    `json:"sealedKey"`    // PEM private key, sealed with the KEK
	CA        string    `json:"ca,omitempty"` // PEM: roots client certificates must chain to (MUTUAL)
	Updated   time.Time `json:"updated"`
	rev       int64
}

// CredentialInfo describes a credential, without its key.
type CredentialInfo struct {
	Namespace, Name string
	Subject         string
	DNSNames        []string
	NotAfter        time.Time
	Fingerprint     string // SHA-256 of the certificate
	HasCA           bool
	Updated         time.Time
}

// Credential is a credential with its key, for SDS.
type Credential struct {
	ChainPEM, KeyPEM, CAPEM []byte
}

func credentialKey(ns, name string) string { return CredentialPrefix + ns + "/" + name }

// PutCredential stores (or replaces) the credential ns/name after checking it: a
// certificate chain, the private key of its first certificate, and optionally CA
// certificates for client certificates.
func (a *Authority) PutCredential(ctx context.Context, ns, name string, chainPEM, keyPEM, caPEM []byte) (CredentialInfo, error) {
	if !api.IsResourceName(ns, name) {
		return CredentialInfo{}, refusedf("credential %q in namespace %q: want a DNS label namespace and a DNS subdomain name (lower-case letters, digits, '-', '.')", name, ns)
	}
	where := "credential " + ns + "/" + name
	chain, err := parseCerts("cert", chainPEM)
	if err != nil {
		return CredentialInfo{}, refusedf("%s: %v", where, err)
	}
	key, err := parseKey("key", keyPEM)
	if err != nil {
		return CredentialInfo{}, refusedf("%s: %v", where, err)
	}
	if !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return CredentialInfo{}, refusedf("%s: key: it is not the key of the certificate %q", where, chain[0].Subject)
	}
	if len(caPEM) > 0 {
		if _, err := parseCerts("ca", caPEM); err != nil {
			return CredentialInfo{}, refusedf("%s: %v", where, err)
		}
	}
	k := credentialKey(ns, name)
	sealed, err := a.kek.seal(keyPEM, []byte(k))
	if err != nil {
		return CredentialInfo{}, err
	}
	rec := &credentialRecord{Namespace: ns, Name: name, Chain: string(chainPEM), SealedKey: sealed, CA: string(caPEM), Updated: time.Now().UTC()}
	val, err := json.Marshal(rec)
	if err != nil {
		return CredentialInfo{}, err
	}
	resp, err := a.cli.Put(ctx, k, string(val))
	if err != nil {
		return CredentialInfo{}, fmt.Errorf("storing the credential: %w", err)
	}
	rec.rev = resp.Header.Revision
	if a.credentials.set(k, rec) {
		a.notifyChanged()
	}
	a.log.Info("gateway credential stored", "credential", ns+"/"+name, "subject", chain[0].Subject.String(), "not_after", chain[0].NotAfter)
	return credentialInfo(rec), nil
}

// Credentials lists the gateway credentials (never their keys), by namespace and name.
func (a *Authority) Credentials(ctx context.Context) ([]CredentialInfo, error) {
	resp, err := a.cli.Get(ctx, CredentialPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := []CredentialInfo{}
	for _, kv := range resp.Kvs {
		if rec, err := decodeCredential(string(kv.Key), kv.Value, kv.ModRevision); err == nil {
			out = append(out, credentialInfo(rec))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out, nil
}

// DeleteCredential removes the credential ns/name.
func (a *Authority) DeleteCredential(ctx context.Context, ns, name string) error {
	k := credentialKey(ns, name)
	resp, err := a.cli.Delete(ctx, k)
	if err != nil {
		return err
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("credential %s/%s: %w", ns, name, ErrNotFound)
	}
	if a.credentials.remove(k) {
		a.notifyChanged()
	}
	a.log.Info("gateway credential deleted", "credential", ns+"/"+name)
	return nil
}

// Credential returns the credential ns/name with its key opened; ok is false when
// there is none (or its key does not open with this node's KEK, which is logged).
func (a *Authority) Credential(ns, name string) (Credential, bool) {
	k := credentialKey(ns, name)
	rec, ok := a.credentials.get(k)
	if !ok {
		return Credential{}, false
	}
	key, err := a.kek.open(rec.SealedKey, []byte(k))
	if err != nil {
		a.log.Error("a gateway credential's key does not open", "credential", ns+"/"+name, "err", err)
		return Credential{}, false
	}
	return Credential{ChainPEM: []byte(rec.Chain), KeyPEM: key, CAPEM: []byte(rec.CA)}, true
}

func decodeCredential(key string, value []byte, rev int64) (*credentialRecord, error) {
	rec := credentialRecord{rev: rev}
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, err
	}
	if credentialKey(rec.Namespace, rec.Name) != key {
		return nil, fmt.Errorf("credential %s/%s does not match its key", rec.Namespace, rec.Name)
	}
	return &rec, nil
}

func credentialInfo(rec *credentialRecord) CredentialInfo {
	info := CredentialInfo{Namespace: rec.Namespace, Name: rec.Name, HasCA: rec.CA != "", Updated: rec.Updated}
	if chain, err := parseCerts("cert", []byte(rec.Chain)); err == nil {
		info.Subject, info.DNSNames, info.NotAfter, info.Fingerprint = chain[0].Subject.String(), chain[0].DNSNames, chain[0].NotAfter, Fingerprint(chain[0])
	}
	return info
}

// credentialCache holds the credentials as watched, keys still sealed.
type credentialCache struct {
	mu sync.RWMutex
	m  map[string]*credentialRecord
}

func (c *credentialCache) get(key string) (*credentialRecord, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.m[key]
	return r, ok
}

// set stores rec unless the cache holds a newer version; it reports whether it did.
func (c *credentialCache) set(key string, rec *credentialRecord) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.m[key]; ok && cur.rev >= rec.rev {
		return false
	}
	c.m[key] = rec
	return true
}

func (c *credentialCache) remove(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[key]
	delete(c.m, key)
	return ok
}

func (c *credentialCache) replace(m map[string]*credentialRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = m
}
