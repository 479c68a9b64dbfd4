package consul

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenFile keeps the ACL token a file holds current: the file is read again when it
// changes (looked at at most once a second, as requests are made), so that a rotated
// token, such as the short-lived ones Vault's Consul secrets engine issues, is sent
// from the next request on, without a restart.
type tokenFile struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	token   string
	modTime time.Time
	size    int64
	checked time.Time
}

// readTokenFile reads the token in path; an unreadable or empty file is an error.
func readTokenFile(path string, log *slog.Logger) (*tokenFile, error) {
	f := &tokenFile{path: path, log: log}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("consul: the ACL token file: %w", err)
	}
	token, err := readToken(path)
	if err != nil {
		return nil, err
	}
	f.token, f.modTime, f.size, f.checked = token, st.ModTime(), st.Size(), time.Now()
	return f, nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("consul: the ACL token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("consul: the ACL token file %s is empty", path)
	}
	return token, nil
}

// get returns the current token. When the file changed it is read again; a file that
// cannot be read, or is empty (half written), leaves the last token in use.
func (f *tokenFile) get() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if now.Sub(f.checked) < time.Second {
		return f.token
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err != nil {
		f.log.Warn("the Consul ACL token file cannot be read; keeping the last token", "file", f.path, "err", err)
		return f.token
	}
	if st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.token
	}
	token, err := readToken(f.path)
	if err != nil {
		f.log.Warn("keeping the last Consul ACL token", "err", err)
		return f.token
	}
	f.modTime, f.size = st.ModTime(), st.Size()
	if token != f.token {
		f.token = token
		f.log.Info("Consul ACL token reloaded", "file", f.path)
	}
	return f.token
}
