// Package reload keeps small files that operators rotate in place (tokens,
// certificates and their keys) current in a running process: a File is read again
// when it changes, so a new token or certificate takes effect without a restart.
package reload

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// interval is how often at most a File looks at its file.
const interval = time.Second

// File is a file read again whenever its modification time or size changes,
// looked at at most once a second, as its content is asked for.
type File struct {
	path string

	mu      sync.Mutex
	data    []byte
	modTime time.Time
	size    int64
	checked time.Time
	now     func() time.Time
}

// Open reads the file at path; an unreadable file is an error.
func Open(path string) (*File, error) {
	f := &File{path: path, now: time.Now}
	if _, _, err := f.read(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Current returns the file's content: what it holds now if it changed since it was
// last read (changed is then true), else what was read before. When the file cannot
// be read, it returns the last content read and the error.
func (f *File) Current() (data []byte, changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.now().Sub(f.checked) < interval {
		return f.data, false, nil
	}
	return f.read()
}

// read reads the file if it changed; f.mu is held (or f is not yet shared).
func (f *File) read() ([]byte, bool, error) {
	f.checked = f.now()
	st, err := os.Stat(f.path)
	if err != nil {
		return f.data, false, err
	}
	if f.data != nil && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.data, false, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return f.data, false, err
	}
	f.data, f.modTime, f.size = b, st.ModTime(), st.Size()
	return b, true, nil
}

// Token is a secret token kept in a File: the file's content, trimmed. A file that
// cannot be read, or is empty (half written), keeps the last token in use; each
// change is logged, naming the token by what.
type Token struct {
	file *File
	what string
	log  *slog.Logger

	mu    sync.Mutex
	token string
}

// OpenToken reads the token in path; an unreadable or empty file is an error.
func OpenToken(path, what string, log *slog.Logger) (*Token, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("the %s file: %w", what, err)
	}
	t := &Token{file: f, what: what, log: log}
	b, _, _ := f.Current()
	if t.token = strings.TrimSpace(string(b)); t.token == "" {
		return nil, fmt.Errorf("the %s file %s is empty", what, path)
	}
	return t, nil
}

// Get returns the current token.
func (t *Token) Get() string {
	b, changed, err := t.file.Current()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch token := strings.TrimSpace(string(b)); {
	case err != nil:
		t.log.Warn("the "+t.what+" file cannot be read; keeping the last token", "file", t.file.Path(), "err", err)
	case !changed || token == t.token:
	case token == "":
		t.log.Warn("the "+t.what+" file is empty; keeping the last token", "file", t.file.Path())
	default:
		t.token = token
		t.log.Info(t.what+" reloaded", "file", t.file.Path())
	}
	return t.token
}
