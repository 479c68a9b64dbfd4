package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RecordedMembers lists the members of the cluster as the member data in dataDir
// last recorded them (the membership etcd keeps in its database), for a node whose
// etcd is not running: what it would rejoin, or must not leave behind.
func RecordedMembers(dataDir string) ([]Member, error) {
	return membersIn(filepath.Join(dataDir, "member", "snap", "db"))
}

// SnapshotMembers lists the members of the cluster a snapshot file (Backup, `navarch
// snapshot save`) was taken from, as that cluster recorded them then.
func SnapshotMembers(path string) ([]Member, error) {
	return membersIn(path) // a snapshot is the database, with its digest after it
}

// membersIn reads the members etcd's database at path records.
func membersIn(path string) ([]Member, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("reading the members %s records: %w", path, err)
	}
	defer db.Close()
	var out []Member
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("members")) // etcd's storage/schema bucket
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var m struct {
				ID         uint64   `json:"id"`
				PeerURLs   []string `json:"peerURLs"`
				IsLearner  bool     `json:"isLearner"`
				Name       string   `json:"name"`
				ClientURLs []string `json:"clientURLs"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("member %s: %w", k, err)
			}
			out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURL: m.ClientURLs, Learner: m.IsLearner})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading the members %s records: %w", path, err)
	}
	return out, nil
}

// PeerAnswers asks the etcd member at peerURL for its version over the peer
// listener, with cfg (the node's certificate, and the cluster's CAs as roots): nil
// means a member of this cluster runs there.
func PeerAnswers(ctx context.Context, peerURL string, cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(peerURL, "/")+"/version", nil)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.Clone(), DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/version: %s", peerURL, resp.Status)
	}
	return nil
}
