package reload

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileFollowsChanges: a File gives the new content once it changed and a second
// went by, keeps the last content while the file cannot be read, and refuses a
// file that is missing at the start.
func TestFileFollowsChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if _, err := Open(path); err == nil {
		t.Fatal("Open of a missing file succeeded")
	}
	os.WriteFile(path, []byte("one"), 0o600)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	f.now = func() time.Time { return clock }
	os.WriteFile(path, []byte("two!"), 0o600)
	if b, changed, err := f.Current(); string(b) != "one" || changed || err != nil {
		t.Fatalf("within a second of the last look: %q %v %v, want the old content", b, changed, err)
	}
	clock = clock.Add(interval)
	if b, changed, err := f.Current(); string(b) != "two!" || !changed || err != nil {
		t.Fatalf("a second later: %q %v %v, want the new content", b, changed, err)
	}
	clock = clock.Add(interval)
	if b, changed, _ := f.Current(); string(b) != "two!" || changed {
		t.Fatalf("unchanged: %q %v", b, changed)
	}
	os.Remove(path)
	clock = clock.Add(interval)
	if b, _, err := f.Current(); string(b) != "two!" || err == nil {
		t.Fatalf("removed: %q %v, want the last content and an error", b, err)
	}
}
