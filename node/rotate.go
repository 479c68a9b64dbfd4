package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/navarch/navarch/internal/reload"
)

// adminToken is the token the API requires: Config.AdminToken, or the token of the
// moment in Config.AdminTokenFile (reload.Token), so that a token rotated in the
// file is required from the next request on.
type adminToken struct {
	fixed string
	file  *reload.Token // nil: fixed
}

// newAdminToken is the token of file, read again when it changes, or fixed when
// file is empty; what names it in errors and logs ("admin token").
func newAdminToken(fixed, file, what string, log *slog.Logger) (*adminToken, error) {
	if file == "" {
		return &adminToken{fixed: fixed}, nil
	}
	f, err := reload.OpenToken(file, what, log)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return &adminToken{file: f}, nil
}

// get returns the token requests must carry; "" when the node has none (a dev node).
func (t *adminToken) get() string {
	if t.file == nil {
		return t.fixed
	}
	return t.file.Get()
}

// servingCert is the API's certificate and key, read again when either file
// changes, so that a renewed certificate is served from the next handshake on (a
// pair that does not load keeps the last one).
type servingCert struct {
	cert, key *reload.File
	log       *slog.Logger

	mu   sync.Mutex
	pair *tls.Certificate
}

func newServingCert(certFile, keyFile string, log *slog.Logger) (*servingCert, error) {
	c := &servingCert{log: log}
	var err error
	if c.cert, err = reload.Open(certFile); err != nil {
		return nil, fmt.Errorf("node: the API certificate: %w", err)
	}
	if c.key, err = reload.Open(keyFile); err != nil {
		return nil, fmt.Errorf("node: the API key: %w", err)
	}
	certPEM, _, _ := c.cert.Current()
	keyPEM, _, _ := c.key.Current()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node: the API certificate and key (%s, %s): %w", certFile, keyFile, err)
	}
	c.pair = &pair
	return c, nil
}

// get is a tls.Config's GetCertificate.
func (c *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	certPEM, certChanged, certErr := c.cert.Current()
	keyPEM, keyChanged, keyErr := c.key.Current()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := errors.Join(certErr, keyErr); err != nil {
		c.log.Warn("the API certificate files cannot be read; serving the last certificate", "err", err)
		return c.pair, nil
	}
	if !certChanged && !keyChanged {
		return c.pair, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// One file rewritten before the other: the next look finds the pair.
		c.log.Warn("the API certificate and key do not load; serving the last certificate", "err", err)
		return c.pair, nil
	}
	c.pair = &pair
	c.log.Info("API certificate reloaded", "file", c.cert.Path())
	return c.pair, nil
}
