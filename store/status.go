package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SourceStatus is how a registry source's last sync went, written by the node that
// syncs it so that every node can show it (navarch registry, /debug/registry).
type SourceStatus struct {
	Source string `json:"source"`
	// Stale is true when the last sync failed: the registry keeps the source's last
	// known entries.
	Stale bool `json:"stale"`
	// LastSync is when a sync last succeeded.
	LastSync time.Time `json:"last_sync"`
	// Error is why the last sync failed.
	Error string `json:"error,omitempty"`
	// Node is the node that syncs the source.
	Node string `json:"node,omitempty"`
}

// statusKey is the key of a source's status: one segment under the source, where
// resource keys have four.
func statusKey(source string) string { return RegistryPrefix + source + "/status" }

// parseStatusKey returns the source of a status key.
func parseStatusKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, RegistryPrefix)
	if !ok {
		return "", false
	}
	source, tail, ok := strings.Cut(rest, "/")
	return source, ok && tail == "status"
}

// PutSourceStatus records a source's sync status.
func (s *Store) PutSourceStatus(ctx context.Context, st SourceStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.commit(ctx, func() (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).Then(clientv3.OpPut(statusKey(st.Source), string(b))).Commit()
	})
	return err
}

func decodeStatus(source string, value []byte) (*SourceStatus, error) {
	var st SourceStatus
	if err := json.Unmarshal(value, &st); err != nil {
		return nil, err
	}
	st.Source = source
	return &st, nil
}
