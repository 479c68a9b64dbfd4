package ca

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

// A join token is "<id>.<secret>": 8 random bytes and 32 random bytes, in hex. Only
// the id and a SHA-256 hash of the secret are stored, so reading etcd does not give
// a usable token; the token itself is shown once, when it is created.
const (
	tokenIDBytes     = 8
	tokenSecretBytes = 32
)

var tokenShape = regexp.MustCompile(`^[0-9a-f]{16}\.[0-9a-f]{64}$`)

// tokenRecord is a join token as stored at TokenPrefix+ID.
type tokenRecord struct {
	ID             string    `json:"id"`
	Hash           string    `json:"hash"` // hex SHA-256 of the secret
	Namespace      string    `json:"namespace"`
	ServiceAccount string    `json:"serviceAccount"`
	WorkloadGroup  string    `json:"workloadGroup"` // namespace/name
	Created        time.Time `json:"created"`
	Expires        time.Time `json:"expires"`
	Revoked        bool      `json:"revoked,omitempty"`
	RevokedAt      time.Time `json:"revokedAt,omitzero"`
	rev            int64     // etcd mod revision
}

// TokenInfo describes a join token, without its secret.
type TokenInfo struct {
	ID            string
	WorkloadGroup string
	Identity      Identity
	Created       time.Time
	Expires       time.Time
	Revoked       bool
}

func (a *Authority) info(t *tokenRecord) TokenInfo {
	return TokenInfo{ID: t.ID, WorkloadGroup: t.WorkloadGroup, Created: t.Created, Expires: t.Expires, Revoked: t.Revoked,
		Identity: Identity{TrustDomain: a.cfg.TrustDomain, Namespace: t.Namespace, ServiceAccount: t.ServiceAccount}}
}

func decodeToken(key string, value []byte, rev int64) (*tokenRecord, error) {
	t := tokenRecord{rev: rev}
	if err := json.Unmarshal(value, &t); err != nil {
		return nil, err
	}
	if t.ID != strings.TrimPrefix(key, TokenPrefix) {
		return nil, fmt.Errorf("token id %q does not match its key", t.ID)
	}
	return &t, nil
}

// CreateToken makes a join token for the VMs of WorkloadGroup group ("namespace/name",
// or "name" in namespace default), valid for ttl. The token authenticates CSRs as the
// group's identity: its namespace, and its template's service account ("default"
// when it names none). The group must exist. The returned token string is not stored
// anywhere: the caller shows it once.
func (a *Authority) CreateToken(ctx context.Context, group string, ttl time.Duration) (string, TokenInfo, error) {
	ns, name, ok := strings.Cut(group, "/")
	if !ok {
		ns, name = api.DefaultNamespace, group
	}
	if ttl <= 0 || ttl > a.cfg.MaxTokenTTL {
		return "", TokenInfo{}, refusedf("token lifetime must be positive and at most %s, got %s", a.cfg.MaxTokenTTL, ttl)
	}
	res, err := a.config.Get(ctx, api.Key{Kind: api.WorkloadGroup, Namespace: ns, Name: name})
	if errors.Is(err, store.ErrNotFound) {
		return "", TokenInfo{}, fmt.Errorf("WorkloadGroup %s/%s: %w: apply it (or create it in the Kubernetes cluster navarch reads Istio's configuration from) before creating a token for it", ns, name, ErrNotFound)
	}
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("reading WorkloadGroup %s/%s: %w", ns, name, err)
	}
	sa := "default"
	if wg, ok := res.Spec.(*networking.WorkloadGroup); ok && wg.GetTemplate().GetServiceAccount() != "" {
		sa = wg.GetTemplate().GetServiceAccount()
	}
	id := Identity{TrustDomain: a.cfg.TrustDomain, Namespace: ns, ServiceAccount: sa}
	if err := id.Validate(); err != nil {
		return "", TokenInfo{}, refusedf("WorkloadGroup %s/%s: identity: %v", ns, name, err)
	}
	idBytes, secret := make([]byte, tokenIDBytes), make([]byte, tokenSecretBytes)
	rand.Read(idBytes)
	rand.Read(secret)
	secretHex := hex.EncodeToString(secret)
	now := time.Now().UTC()
	t := &tokenRecord{ID: hex.EncodeToString(idBytes), Hash: hashSecret(secretHex), Namespace: ns, ServiceAccount: sa,
		WorkloadGroup: ns + "/" + name, Created: now, Expires: now.Add(ttl)}
	val, err := json.Marshal(t)
	if err != nil {
		return "", TokenInfo{}, err
	}
	key := TokenPrefix + t.ID
	resp, err := a.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("storing the token: %w", err)
	}
	if !resp.Succeeded {
		return "", TokenInfo{}, fmt.Errorf("storing the token: id %s is taken (try again)", t.ID)
	}
	t.rev = resp.Header.Revision
	a.tokens.set(t)
	a.log.Info("join token created", "id", t.ID, "workload_group", t.WorkloadGroup, "identity", id.SPIFFE(), "expires", t.Expires)
	return t.ID + "." + secretHex, a.info(t), nil
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Tokens lists every join token (never their secrets), oldest first.
func (a *Authority) Tokens(ctx context.Context) ([]TokenInfo, error) {
	resp, err := a.cli.Get(ctx, TokenPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := []TokenInfo{}
	for _, kv := range resp.Kvs {
		if t, err := decodeToken(string(kv.Key), kv.Value, kv.ModRevision); err == nil {
			out = append(out, a.info(t))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// RevokeToken revokes the join token id: it no longer authenticates anyone, on any
// node (others learn it through their watch, within milliseconds). Workloads that
// already hold certificates keep them until they expire; they renew with their
// certificate, not the token.
func (a *Authority) RevokeToken(ctx context.Context, id string) (TokenInfo, error) {
	key := TokenPrefix + id
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := a.cli.Get(ctx, key)
		if err != nil {
			return TokenInfo{}, err
		}
		if len(resp.Kvs) == 0 {
			return TokenInfo{}, fmt.Errorf("join token %q: %w", id, ErrNotFound)
		}
		t, err := decodeToken(key, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
		if err != nil {
			return TokenInfo{}, err
		}
		if t.Revoked {
			return a.info(t), nil
		}
		t.Revoked, t.RevokedAt = true, time.Now().UTC()
		val, err := json.Marshal(t)
		if err != nil {
			return TokenInfo{}, err
		}
		txn, err := a.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return TokenInfo{}, err
		}
		if txn.Succeeded {
			t.rev = txn.Header.Revision
			a.tokens.set(t)
			a.log.Info("join token revoked", "id", id, "workload_group", t.WorkloadGroup)
			return a.info(t), nil
		}
	}
	return TokenInfo{}, fmt.Errorf("revoking join token %q: %w: it keeps changing", id, ErrConflict)
}

// authenticateToken returns the identity a join token stands for.
func (a *Authority) authenticateToken(ctx context.Context, token string) (Identity, error) {
	if !tokenShape.MatchString(token) {
		return Identity{}, unauthenticatedf("malformed join token: want <16 hex digits>.<64 hex digits>")
	}
	id, secret, _ := strings.Cut(token, ".")
	t, ok := a.tokens.get(id)
	if !ok {
		// Created on another node a moment ago, before our watch saw it: ask etcd.
		resp, err := a.cli.Get(ctx, TokenPrefix+id)
		if err != nil {
			return Identity{}, fmt.Errorf("looking up the join token: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return Identity{}, unauthenticatedf("join token %s does not exist", id)
		}
		if t, err = decodeToken(TokenPrefix+id, resp.Kvs[0].Value, resp.Kvs[0].ModRevision); err != nil {
			return Identity{}, err
		}
		a.tokens.set(t)
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(t.Hash)) != 1 {
		return Identity{}, unauthenticatedf("join token %s: wrong secret", id)
	}
	if t.Revoked {
		return Identity{}, unauthenticatedf("join token %s (WorkloadGroup %s) was revoked", id, t.WorkloadGroup)
	}
	if now := time.Now(); now.After(t.Expires) {
		return Identity{}, unauthenticatedf("join token %s (WorkloadGroup %s) expired at %s", id, t.WorkloadGroup, t.Expires.UTC().Format(time.RFC3339))
	}
	return Identity{TrustDomain: a.cfg.TrustDomain, Namespace: t.Namespace, ServiceAccount: t.ServiceAccount}, nil
}

// tokenCache holds every join token, kept current by the watch.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]*tokenRecord
}

func (c *tokenCache) get(id string) (*tokenRecord, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.m[id]
	return t, ok
}

// set stores t unless the cache holds a newer version of it.
func (c *tokenCache) set(t *tokenRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.m[t.ID]; ok && cur.rev > t.rev {
		return
	}
	c.m[t.ID] = t
}

func (c *tokenCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

func (c *tokenCache) replace(m map[string]*tokenRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = m
}
