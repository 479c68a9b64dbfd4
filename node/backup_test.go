package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/ca"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/store"
)

// A node with a backup dir saves a checked snapshot every interval, keeps the
// newest of its own (another node's files in the dir untouched), says when it
// saved the last, and a node restored from one holds what was applied before it.
func TestScheduledBackups(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, backupName("navarch-b", time.Now().Add(-time.Hour))) // a node whose name extends this one's
	unfinished := filepath.Join(dir, unfinishedPrefix("navarch")+"123")              // a backup cut short by a crash
	for _, f := range []string{other, unfinished} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kek := ca.GenerateKEK()
	configure := func(c *Config) {
		c.Backups = BackupConfig{Dir: dir, Interval: time.Second, Keep: 2}
		c.CAKEK, c.ClusterSecret = kek, "a-fixed-dev-cluster-secret"
	}
	api, stop := runDevNode(t, configure)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	applied := time.Now()
	if _, err := api.Apply(ctx, "", []client.File{{Source: "vs.yaml", Data: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`}}); err != nil {
		t.Fatal(err)
	}
	var files []backupFile
	for deadline := time.Now().Add(30 * time.Second); ; {
		var err error
		if files, err = backupFiles(dir, "navarch"); err != nil {
			t.Fatal(err)
		}
		if len(files) > 2 {
			t.Fatalf("%d backups kept, want the newest 2", len(files))
		}
		if len(files) == 2 && files[0].at.After(applied) {
			break // both taken after the apply: the first is pruned
		}
		if time.Now().After(deadline) {
			t.Fatalf("backups %v after 30s", files)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another node's backup: %v", err)
	}
	if _, err := os.Stat(unfinished); !os.IsNotExist(err) {
		t.Errorf("an unfinished backup of this node stays: %v", err)
	}
	// The file is in place a moment before the node notes it: wait for the note.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ms, err := api.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 1 && ms[0].BackupInterval == 1 && !ms[0].LastBackup.Before(files[1].at.Add(-time.Millisecond)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members: %+v, want the last backup at %s or later", ms, files[1].at)
		}
		time.Sleep(50 * time.Millisecond)
	}
	info, err := store.InspectSnapshot(files[1].path)
	if err != nil || info.Keys == 0 {
		t.Fatalf("the newest backup: %+v, %v", info, err)
	}
	stop() // a restore is refused while the backed-up member answers

	restored, stopRestored := runDevNode(t, func(c *Config) { configure(c); c.Backups = BackupConfig{}; c.RestoreFrom = files[1].path })
	defer stopRestored()
	items, _, err := restored.List(ctx, "virtualservices", "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Meta.Name != "reviews" {
		t.Fatalf("restored from %s: %d virtual services", files[1].path, len(items))
	}
}

func TestNodeNames(t *testing.T) {
	for name, want := range map[string]bool{"n1": true, "node-1.east_a": true, "": false, "a/b": false, "..": false, "n1+x": false,
		strings.Repeat("a", 64): false} {
		if got := validNodeName(name); got != want {
			t.Errorf("validNodeName(%q) = %v, want %v", name, got, want)
		}
	}
}
