package ca

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// follow watches the CA's keys from rev on and applies every change: a new record
// (import, rotation) swaps the signer; token writes update the token cache. When the
// watch fails (compaction, lost leader) it reloads everything and watches again; in
// the meantime the node keeps signing with what it has.
func (a *Authority) follow(ctx context.Context, rev int64) error {
	backoff := 100 * time.Millisecond
	for {
		err := a.watch(ctx, rev)
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("watching the CA's keys failed; reloading", "err", err)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 3*time.Second)
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			rev, err = a.load(lctx)
			cancel()
			if err == nil {
				backoff = 100 * time.Millisecond
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("reloading the CA's keys; retrying", "err", err)
		}
	}
}

// watch applies the changes after rev until the watch ends.
func (a *Authority) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range a.cli.Watch(wctx, Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			a.apply(ev)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("the watch ended")
}

// apply applies one change of a CA key.
func (a *Authority) apply(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	switch {
	case key == authorityKey && ev.Type == mvccpb.PUT:
		rec, err := unmarshalRecord(ev.Kv.Value)
		if err == nil {
			var is *issuer
			if is, err = rec.open(a.kek, &a.cfg, ev.Kv.ModRevision); err == nil {
				if !a.swap(is) {
					return // this node made the change and applied it already
				}
				a.log.Info("certificate authority changed", "source", is.source, "root", Fingerprint(is.roots[0]), "roots", len(is.roots))
				return
			}
		}
		a.log.Error("the CA record changed but cannot be used; still signing with the previous one", "err", err)
	case key == authorityKey:
		a.log.Error("the CA record was deleted from etcd; still signing with the previous one")
	case strings.HasPrefix(key, CredentialPrefix) && ev.Type == mvccpb.PUT:
		c, err := decodeCredential(key, ev.Kv.Value, ev.Kv.ModRevision)
		if err != nil {
			a.log.Warn("skipping an undecodable gateway credential", "key", key, "err", err)
			return
		}
		if a.credentials.set(key, c) {
			a.notifyChanged()
		}
	case strings.HasPrefix(key, CredentialPrefix):
		if a.credentials.remove(key) {
			a.notifyChanged()
		}
	case strings.HasPrefix(key, TokenPrefix) && ev.Type == mvccpb.PUT:
		t, err := decodeToken(key, ev.Kv.Value, ev.Kv.ModRevision)
		if err != nil {
			a.log.Warn("skipping an undecodable join token", "key", key, "err", err)
			return
		}
		a.tokens.set(t)
	case strings.HasPrefix(key, TokenPrefix):
		a.tokens.remove(strings.TrimPrefix(key, TokenPrefix))
	}
}
