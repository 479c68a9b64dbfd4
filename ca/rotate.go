package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Rotate replaces the signer with a new self-signed root and an intermediate it
// signs, and starts the overlap: the trust bundle holds the new root and the old one,
// so certificates issued before keep verifying while workloads renew (theirs now chain
// to the new root). FinishRotation ends the overlap. A rotation cannot start while
// one is in progress (ErrConflict).
func (a *Authority) Rotate(ctx context.Context) error {
	return a.update(ctx, "rotate", func(cur *record, is *issuer) (*record, error) {
		if err := noOverlap(is); err != nil {
			return nil, err
		}
		now := time.Now()
		root, inter, key, err := newSelfSignedCA(a.cfg.TrustDomain, a.cfg.RootTTL, a.cfg.IntermediateTTL, now)
		if err != nil {
			return nil, err
		}
		next, err := newRecord(a.cfg.TrustDomain, SourceSelfSigned, []*x509.Certificate{inter}, []*x509.Certificate{root, is.roots[0]}, key, a.kek, now)
		if err != nil {
			return nil, err
		}
		next.keepPrevious(cur)
		return next, nil
	})
}

// FinishRotation ends a rotation (or an import's overlap): only the current signer's
// root stays in the trust bundle, so certificates that chain to the old root no
// longer verify. Run it once every workload has renewed (after the longest
// certificate lifetime in use). Without a rotation in progress it fails with
// ErrConflict.
func (a *Authority) FinishRotation(ctx context.Context) error {
	return a.update(ctx, "finish rotation", func(cur *record, is *issuer) (*record, error) {
		if len(is.roots) < 2 {
			return nil, fmt.Errorf("no rotation to finish: the trust bundle holds one root: %w", ErrConflict)
		}
		next := *cur
		next.Roots = []string{encodeCert(is.roots[0])}
		next.PreviousChain, next.PreviousKey = nil, ""
		next.Updated = time.Now().UTC()
		return &next, nil
	})
}

// noOverlap refuses to start a rotation or import while the bundle still holds an
// earlier root: it would have to drop one that workloads may still depend on.
func noOverlap(is *issuer) error {
	if len(is.roots) > 1 {
		return fmt.Errorf("a rotation is in progress (%d roots trusted): finish it first (navarch ca rotate --finish): %w", len(is.roots), ErrConflict)
	}
	return nil
}

// update rewrites the CA record with change, as a compare-and-swap on the record's
// revision (retried if another node wrote in between), and makes the result current
// on this node at once; other nodes follow through their watch.
func (a *Authority) update(ctx context.Context, what string, change func(cur *record, is *issuer) (*record, error)) error {
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := a.cli.Get(ctx, authorityKey)
		if err != nil {
			return fmt.Errorf("%s: reading the CA: %w", what, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%s: %w", what, ErrNotReady)
		}
		kv := resp.Kvs[0]
		cur, err := unmarshalRecord(kv.Value)
		if err != nil {
			return err
		}
		is, err := cur.open(a.kek, &a.cfg, kv.ModRevision)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		next, err := change(cur, is)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		val, err := next.marshal()
		if err != nil {
			return err
		}
		txn, err := a.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(authorityKey), "=", kv.ModRevision)).
			Then(clientv3.OpPut(authorityKey, val)).Commit()
		if err != nil {
			return fmt.Errorf("%s: writing the CA: %w", what, err)
		}
		if !txn.Succeeded {
			continue
		}
		nis, err := next.open(a.kek, &a.cfg, txn.Header.Revision)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		a.swap(nis)
		a.log.Info("certificate authority updated", "change", what, "source", nis.source, "root", Fingerprint(nis.roots[0]), "roots", len(nis.roots))
		return nil
	}
	return fmt.Errorf("%s: %w: the CA record keeps changing", what, ErrConflict)
}

// keepPrevious keeps cur's signer in r as the previous one, for the overlap (its key
// stays sealed as it was: the seal is bound to its certificate, not to the record).
func (r *record) keepPrevious(cur *record) {
	r.PreviousChain, r.PreviousKey = cur.Chain, cur.SealedKey
}
