package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSaveSnapshotKeepsOnlyWhatChecks: a snapshot is kept only when the transfer
// ends and its digest checks; nothing is left behind otherwise, and an existing
// file is never replaced.
func TestSaveSnapshotKeepsOnlyWhatChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.db")
	leftovers := func() []string {
		es, _ := os.ReadDir(dir)
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}

	err := saveSnapshot(context.Background(), path, func(w io.Writer) error {
		w.Write(bytes.Repeat([]byte{1}, 4096+32)) // a database's size, but no database
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("garbage saved: %v", err)
	}
	if l := leftovers(); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}

	err = saveSnapshot(context.Background(), path, func(w io.Writer) error {
		w.Write([]byte("half a snapshot"))
		return errors.New("connection reset")
	})
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("a failed transfer: %v", err)
	}
	if l := leftovers(); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}

	if err := os.WriteFile(path, []byte("an older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = saveSnapshot(context.Background(), path, func(io.Writer) error { t.Error("fetched over an existing file"); return nil })
	if err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("an existing file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "an older backup" {
		t.Errorf("the existing file was changed: %q", b)
	}
}
