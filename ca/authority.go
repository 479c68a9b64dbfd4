package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

// ConfigReader reads configuration; the authority reads WorkloadGroups from it when
// it creates join tokens. store.Layered implements it. Get may block on etcd until
// ctx ends.
type ConfigReader interface {
	Get(ctx context.Context, k api.Key) (*api.Resource, error)
}

var _ ConfigReader = store.Layered{}

// Authority is one node's certificate authority: it holds the cluster's signer (read
// from etcd, created there by the first node that finds none), signs workload
// certificates, authenticates callers, and keeps join tokens. Every node runs one;
// they share their state through etcd and watch it, so an import or rotation made on
// one node takes effect on all.
//
// Its methods may be called from any goroutine once Ready is closed; before that,
// signing and authenticating fail with ErrNotReady.
type Authority struct {
	cfg    Config
	cli    *clientv3.Client
	kek    KEK
	config ConfigReader
	log    *slog.Logger

	cur       atomic.Pointer[issuer]
	ready     chan struct{}
	readyOnce sync.Once

	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) when the signer, bundle or a credential changes

	tokens      tokenCache
	credentials credentialCache
	reviewer    atomic.Pointer[TokenReviewer] // nil: no Kubernetes tokens
}

// New returns the authority of a node. cli is the node's etcd client (the CA keeps
// its own keys under Prefix), kek the cluster's key-encryption key, config where
// WorkloadGroups are read. Run loads (or creates) the cluster's CA and keeps it
// current.
func New(cfg Config, cli *clientv3.Client, kek KEK, config ConfigReader, log *slog.Logger) (*Authority, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !kek.Valid() {
		return nil, errors.New("ca: a key-encryption key is required (--ca-kek-file)")
	}
	a := &Authority{cfg: cfg, cli: cli, kek: kek, config: config, log: log.With("component", "ca"),
		ready: make(chan struct{}), changed: make(chan struct{})}
	a.tokens.m = map[string]*tokenRecord{}
	a.credentials.m = map[string]*credentialRecord{}
	return a, nil
}

// Ready is closed once the authority has loaded the cluster's CA.
func (a *Authority) Ready() <-chan struct{} { return a.ready }

// Changed returns a channel closed at the next change of the signer, the trust
// bundle (an import, a rotation, its finish) or a gateway credential. Call it again
// for the change after.
func (a *Authority) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// TrustDomain returns the mesh's trust domain.
func (a *Authority) TrustDomain() string { return a.cfg.TrustDomain }

// TrustBundle returns the roots a workload must trust: during a rotation, the new
// root first and the old one after it. Nil before Ready.
func (a *Authority) TrustBundle() []*x509.Certificate {
	if is := a.cur.Load(); is != nil {
		return append([]*x509.Certificate(nil), is.roots...)
	}
	return nil
}

// TrustBundlePEM returns TrustBundle as PEM, "" before Ready.
func (a *Authority) TrustBundlePEM() string {
	if is := a.cur.Load(); is != nil {
		return is.bundle
	}
	return ""
}

// Sign checks a PEM CSR from the authenticated caller id and, if it may be signed,
// issues a certificate for id valid for ttl (0: the configured default). It returns
// the chain as PEM, the new certificate first and the root last. A CSR or TTL it
// will not sign gets an error matching ErrRefused that says why.
func (a *Authority) Sign(csrPEM []byte, id Identity, ttl time.Duration) ([]string, error) {
	is := a.cur.Load()
	if is == nil {
		return nil, ErrNotReady
	}
	if id.TrustDomain != a.cfg.TrustDomain {
		return nil, refusedf("identity %s is not of trust domain %s", id, a.cfg.TrustDomain)
	}
	ttl, err := a.cfg.checkTTL(ttl)
	if err != nil {
		return nil, err
	}
	pub, err := checkCSR(csrPEM, id, a.cfg.MaxCSRBytes, a.cfg.MaxSANs)
	if err != nil {
		return nil, err
	}
	chain, _, err := is.issue(id, pub, ttl, time.Now())
	return chain, err
}

// IssueKeyPair creates a key for id and a certificate for it, for a caller that
// serves both to a workload (SDS). It returns the chain (PEM, leaf first, root last),
// the key (PEM, PKCS#8) and when the certificate expires.
func (a *Authority) IssueKeyPair(id Identity, ttl time.Duration) (chain []string, keyPEM []byte, notAfter time.Time, err error) {
	is := a.cur.Load()
	if is == nil {
		return nil, nil, time.Time{}, ErrNotReady
	}
	if err := id.Validate(); err != nil {
		return nil, nil, time.Time{}, refusedf("identity: %v", err)
	}
	if ttl, err = a.cfg.checkTTL(ttl); err != nil {
		return nil, nil, time.Time{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	if chain, notAfter, err = is.issue(id, key.Public(), ttl, time.Now()); err != nil {
		return nil, nil, time.Time{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	return chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), notAfter, nil
}

// Run loads the cluster's CA, creating it if this node is the first to find none,
// closes Ready, then follows changes to the CA and its join tokens until ctx ends.
// It fails when the stored CA cannot be used by this node (another trust domain,
// another KEK).
func (a *Authority) Run(ctx context.Context) error {
	rev, err := a.loadRetrying(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	a.readyOnce.Do(func() { close(a.ready) })
	is := a.cur.Load()
	a.log.Info("certificate authority loaded", "trust_domain", a.cfg.TrustDomain, "source", is.source,
		"root", Fingerprint(is.roots[0]), "roots", len(is.roots), "kek", a.kek.ID())
	return a.follow(ctx, rev)
}

// loadRetrying loads the CA, retrying while etcd is unavailable.
func (a *Authority) loadRetrying(ctx context.Context) (int64, error) {
	backoff := 100 * time.Millisecond
	for {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rev, err := a.load(lctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return rev, err
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return 0, fatal.err
		}
		a.log.Warn("loading the certificate authority; retrying", "err", err)
		select {
		case <-ctx.Done():
			return 0, nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 3*time.Second)
	}
}

// fatalError is a load failure that retrying cannot fix.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// load reads everything under Prefix at one revision: the record (created if absent)
// and the tokens. It returns the revision read.
func (a *Authority) load(ctx context.Context) (int64, error) {
	resp, err := a.cli.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	var rec *record
	var recRev int64
	tokens := map[string]*tokenRecord{}
	credentials := map[string]*credentialRecord{}
	for _, kv := range resp.Kvs {
		switch key := string(kv.Key); {
		case key == authorityKey:
			if rec, err = unmarshalRecord(kv.Value); err != nil {
				return 0, &fatalError{err}
			}
			recRev = kv.ModRevision
		case strings.HasPrefix(key, CredentialPrefix):
			if c, err := decodeCredential(key, kv.Value, kv.ModRevision); err != nil {
				a.log.Warn("skipping an undecodable gateway credential", "key", key, "err", err)
			} else {
				credentials[key] = c
			}
		default:
			if t, err := decodeToken(key, kv.Value, kv.ModRevision); err != nil {
				a.log.Warn("skipping an undecodable join token", "key", key, "err", err)
			} else {
				tokens[t.ID] = t
			}
		}
	}
	rev := resp.Header.Revision
	if rec == nil {
		if rec, recRev, err = a.bootstrap(ctx); err != nil {
			return 0, err
		}
		// What bootstrap wrote (or found) is at recRev; follow from there on.
		rev = max(rev, recRev)
	}
	if rec.TrustDomain != a.cfg.TrustDomain {
		return 0, &fatalError{fmt.Errorf("ca: the cluster's trust domain is %q, this node was started with --trust-domain %q", rec.TrustDomain, a.cfg.TrustDomain)}
	}
	is, err := rec.open(a.kek, &a.cfg, recRev)
	if err != nil {
		return 0, &fatalError{fmt.Errorf("ca: %w", err)}
	}
	a.tokens.replace(tokens)
	a.credentials.replace(credentials)
	if !a.swap(is) { // swap tells whoever waits on Changed when it takes is
		a.notifyChanged() // the credentials may have changed all the same
	}
	return rev, nil
}

// bootstrap creates the cluster's CA unless another node already did: a
// create-if-absent transaction, whose loser reads the winner's record.
func (a *Authority) bootstrap(ctx context.Context) (*record, int64, error) {
	now := time.Now()
	root, inter, key, err := newSelfSignedCA(a.cfg.TrustDomain, a.cfg.RootTTL, a.cfg.IntermediateTTL, now)
	if err != nil {
		return nil, 0, err
	}
	rec, err := newRecord(a.cfg.TrustDomain, SourceSelfSigned, []*x509.Certificate{inter}, []*x509.Certificate{root}, key, a.kek, now)
	if err != nil {
		return nil, 0, err
	}
	val, err := rec.marshal()
	if err != nil {
		return nil, 0, err
	}
	resp, err := a.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(authorityKey), "=", 0)).
		Then(clientv3.OpPut(authorityKey, val)).
		Else(clientv3.OpGet(authorityKey)).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("creating the cluster's CA: %w", err)
	}
	if resp.Succeeded {
		a.log.Info("created the cluster's certificate authority", "root", Fingerprint(root), "trust_domain", a.cfg.TrustDomain)
		return rec, resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, 0, errors.New("creating the cluster's CA: lost the race, but the winner's record is gone")
	}
	won, err := unmarshalRecord(kvs[0].Value)
	if err != nil {
		return nil, 0, &fatalError{err}
	}
	return won, kvs[0].ModRevision, nil
}

// swap makes is the current signer, if it is newer than the current one, and tells
// whoever waits on Changed. It reports whether it did.
func (a *Authority) swap(is *issuer) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.cur.Load(); cur != nil && cur.rev >= is.rev {
		return false
	}
	a.cur.Store(is)
	a.notifyChangedLocked()
	return true
}

// notifyChanged tells whoever waits on Changed.
func (a *Authority) notifyChanged() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notifyChangedLocked()
}

func (a *Authority) notifyChangedLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}
