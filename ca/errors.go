package ca

import (
	"errors"
	"fmt"
)

var (
	// ErrRefused marks a request the CA will not sign (a bad CSR, a TTL out of
	// bounds); the error's message says why. The caller should not retry it as is.
	ErrRefused = errors.New("refused")
	// ErrUnauthenticated marks a caller the CA could not authenticate: no credential,
	// an unknown, expired or revoked join token, a certificate the trust bundle does
	// not verify.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrNotReady is returned before the authority has loaded the cluster's CA.
	ErrNotReady = errors.New("the certificate authority is not loaded yet")
	// ErrUnavailable marks a request the CA could not decide because something it
	// asks is out of reach (the Kubernetes API server reviewing a token); another
	// node, or a retry, may succeed.
	ErrUnavailable = errors.New("unavailable")
	// ErrNotFound is returned for a join token id that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a rotation or import cannot start in the current
	// state (a rotation in progress, none to finish).
	ErrConflict = errors.New("conflict")
)

// authError is a caller the CA could not authenticate, and why.
type authError struct{ msg string }

func (e *authError) Error() string        { return e.msg }
func (e *authError) Is(target error) bool { return target == ErrUnauthenticated }

func unauthenticatedf(format string, args ...any) error {
	return &authError{msg: fmt.Sprintf(format, args...)}
}
