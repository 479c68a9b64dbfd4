package reload

import (
	"log/slog"
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

// TestTokenKeepsTheLastOnAnEmptyFile: a token is trimmed, follows its file, and an
// empty (half-written) file keeps the last one; an empty file at the start is refused.
func TestTokenKeepsTheLastOnAnEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	os.WriteFile(path, nil, 0o600)
	if _, err := OpenToken(path, "test token", slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("an empty token file was accepted")
	}
	os.WriteFile(path, []byte(" one\n"), 0o600)
	tok, err := OpenToken(path, "test token", slog.New(slog.DiscardHandler))
	if err != nil || tok.Get() != "one" {
		t.Fatalf("%v %q", err, tok.Get())
	}
	clock := time.Now()
	tok.file.now = func() time.Time { return clock }
	os.WriteFile(path, nil, 0o600)
	clock = clock.Add(interval)
	if got := tok.Get(); got != "one" {
		t.Fatalf("empty file: %q, want the last token", got)
	}
	os.WriteFile(path, []byte("two\n"), 0o600)
	clock = clock.Add(interval)
	if got := tok.Get(); got != "two" {
		t.Fatalf("rotated: %q, want two", got)
	}
}
