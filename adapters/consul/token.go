package consul

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/navarch/navarch/internal/reload"
)

// tokenFile keeps the ACL token a file holds current (reload.File), so that a
// rotated token, such as the short-lived ones Vault's Consul secrets engine issues,
// is sent from the next request on, without a restart.
type tokenFile struct {
	file *reload.File
	log  *slog.Logger

	mu    sync.Mutex
	token string
}

// readTokenFile reads the token in path; an unreadable or empty file is an error.
func readTokenFile(path string, log *slog.Logger) (*tokenFile, error) {
	file, err := reload.Open(path)
	if err != nil {
		return nil, fmt.Errorf("consul: the ACL token file: %w", err)
	}
	b, _, _ := file.Current()
	token := strings.TrimSpace(string(b))
	if token == "" {
		return nil, fmt.Errorf("consul: the ACL token file %s is empty", path)
	}
	return &tokenFile{file: file, log: log, token: token}, nil
}

// get returns the current token. A file that cannot be read, or is empty (half
// written), leaves the last token in use.
func (f *tokenFile) get() string {
	b, changed, err := f.file.Current()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch token := strings.TrimSpace(string(b)); {
	case err != nil:
		f.log.Warn("the Consul ACL token file cannot be read; keeping the last token", "file", f.file.Path(), "err", err)
	case !changed || token == f.token:
	case token == "":
		f.log.Warn("the Consul ACL token file is empty; keeping the last token", "file", f.file.Path())
	default:
		f.token = token
		f.log.Info("Consul ACL token reloaded", "file", f.file.Path())
	}
	return f.token
}
