package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// Backup streams a snapshot of the member's database (etcd's `snapshot save`):
// every key navarch keeps, at one revision, followed by its SHA-256 (which
// RestoreSnapshot checks). The caller closes it.
func (s *Store) Backup(ctx context.Context) (io.ReadCloser, error) {
	rc, err := s.cli.Snapshot(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	return rc, nil
}

// SnapshotInfo describes a snapshot file.
type SnapshotInfo struct {
	Revision  int64
	Keys      int
	SizeBytes int64
	Hash      uint32 // of the database's contents, as etcd computes it
}

// InspectSnapshot reads a snapshot file, checking the SHA-256 it ends with.
func InspectSnapshot(path string) (SnapshotInfo, error) {
	if err := checkSnapshotDigest(path); err != nil {
		return SnapshotInfo{}, err
	}
	st, err := snapshot.NewV3(zap.NewNop()).Status(path)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return SnapshotInfo{Revision: st.Revision, Keys: st.TotalKey, SizeBytes: st.TotalSize, Hash: st.Hash}, nil
}

// RestoreSnapshot creates cfg.DataDir (which must not exist) from a snapshot file,
// as the data of a one-member cluster whose member is cfg's: starting the store
// then starts that cluster with everything the snapshot held. Other nodes join it
// as they would join any running cluster.
func RestoreSnapshot(path string, cfg Config, log *slog.Logger) error {
	err := snapshot.NewV3(newEtcdLogger(log, cfg.LogLevel, nil)).Restore(snapshot.RestoreConfig{
		SnapshotPath:        path,
		Name:                cfg.Name,
		OutputDataDir:       cfg.DataDir,
		PeerURLs:            []string{cfg.PeerURL},
		InitialCluster:      cfg.Name + "=" + cfg.PeerURL,
		InitialClusterToken: cfg.ClusterToken,
	})
	if err != nil {
		return fmt.Errorf("restoring snapshot %s into %s: %w", path, cfg.DataDir, err)
	}
	return nil
}

// checkSnapshotDigest checks the SHA-256 etcd appends to the database it streams as
// a snapshot.
func checkSnapshotDigest(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading the snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading the snapshot: %w", err)
	}
	size := fi.Size() - sha256.Size
	if size <= 0 || size%512 != 0 { // the database is a whole number of pages
		return fmt.Errorf("snapshot %s: %d bytes is not a database followed by its SHA-256", path, fi.Size())
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("snapshot %s: its SHA-256 does not match its contents (damaged or cut short)", path)
	}
	return nil
}
