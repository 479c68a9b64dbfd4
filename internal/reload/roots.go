package reload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Roots is a bundle of CA certificates (PEM) kept in a File, to verify servers
// with: a rotated bundle is trusted from the next connection on. A file that cannot
// be read, or holds no certificate (half written), keeps the last bundle in use;
// each change is logged, naming the bundle by what.
type Roots struct {
	file *File
	what string
	log  *slog.Logger

	mu   sync.Mutex
	pool *x509.CertPool
}

// OpenRoots reads the bundle in path; an unreadable file, or one without a
// certificate, is an error.
func OpenRoots(path, what string, log *slog.Logger) (*Roots, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("the %s: %w", what, err)
	}
	b, _, _ := f.Current()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("the %s %s holds no PEM certificate", what, path)
	}
	return &Roots{file: f, what: what, log: log, pool: pool}, nil
}

// Pool returns the current bundle.
func (r *Roots) Pool() *x509.CertPool {
	b, changed, err := r.file.Current()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		r.log.Warn("the "+r.what+" cannot be read; keeping the last one", "file", r.file.Path(), "err", err)
	case changed:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			r.log.Warn("the "+r.what+" holds no PEM certificate; keeping the last one", "file", r.file.Path())
			break
		}
		r.pool = pool
		r.log.Info(r.what+" reloaded", "file", r.file.Path())
	}
	return r.pool
}

// VerifyServer verifies a server's certificate chain, for the name it was dialled
// by, against the current bundle. It is a tls.Config's VerifyConnection, with
// InsecureSkipVerify set so that the bundle the Config was built with is not used.
func (r *Roots) VerifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	opts := x509.VerifyOptions{DNSName: cs.ServerName, Roots: r.Pool(), Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}
