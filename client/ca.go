package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The certificate authority's API, under /api/v1/ca (admin token required):
//
//	GET  /api/v1/ca                       CAInfo
//	POST /api/v1/ca/import                CAImportRequest -> CAInfo
//	POST /api/v1/ca/rotate                CARotateRequest -> CAInfo
//	GET  /api/v1/ca/tokens                []TokenInfo
//	POST /api/v1/ca/tokens                TokenRequest -> TokenCreated
//	POST /api/v1/ca/tokens/<id>/revoke    TokenInfo
//	GET  /api/v1/ca/credentials           []CredentialInfo
//	POST /api/v1/ca/credentials           CredentialRequest -> CredentialInfo
//	DELETE /api/v1/ca/credentials/<ns>/<name>

// CAInfo describes the mesh's certificate authority: never a key.
type CAInfo struct {
	TrustDomain string `json:"trustDomain"`
	// Source is "self-signed" (created by the cluster) or "imported" (an operator's).
	Source string `json:"source"`
	// Roots is the trust bundle, the signing chain's root first.
	Roots []CertInfo `json:"roots"`
	// Chain is the signing certificate and the intermediates above it, root excluded.
	Chain []CertInfo `json:"chain"`
	// Rotating is true while an earlier root is still trusted (rotate --finish ends it).
	Rotating bool      `json:"rotating"`
	Updated  time.Time `json:"updated"`
	// KEKID names the node's key-encryption key (a hash, not the key).
	KEKID string `json:"kekId"`
	// TrustBundle is Roots as PEM.
	TrustBundle string `json:"trustBundle"`
	// CertTTL and MaxCertTTL are the answering node's workload certificate lifetimes.
	CertTTL    string `json:"certTTL"`
	MaxCertTTL string `json:"maxCertTTL"`
}

// CertInfo describes one certificate.
type CertInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// SHA256 is the certificate's SHA-256 fingerprint (openssl x509 -fingerprint -sha256).
	SHA256 string `json:"sha256"`
	PEM    string `json:"pem"`
}

// CAImportRequest is an operator's intermediate CA: the PEM contents of Istio's
// cacerts files.
type CAImportRequest struct {
	Cert  string `json:"caCert"`
	Key   string `json:"caKey"`
	Chain string `json:"certChain,omitempty"`
	Root  string `json:"rootCert"`
}

// CARotateRequest starts a root rotation, or finishes one.
type CARotateRequest struct {
	Finish bool `json:"finish,omitempty"`
}

// TokenRequest asks for a join token for the VMs of a WorkloadGroup.
type TokenRequest struct {
	// WorkloadGroup is "namespace/name".
	WorkloadGroup string `json:"workloadGroup"`
	// TTL is how long the token is valid, a Go duration ("1h").
	TTL string `json:"ttl"`
}

// TokenInfo describes a join token, without its secret.
type TokenInfo struct {
	ID            string    `json:"id"`
	WorkloadGroup string    `json:"workloadGroup"`
	Identity      string    `json:"identity"`
	Created       time.Time `json:"created"`
	Expires       time.Time `json:"expires"`
	Revoked       bool      `json:"revoked,omitempty"`
	// Status is valid, expired or revoked.
	Status string `json:"status"`
}

// TokenCreated is a new join token: Token is shown this once and stored nowhere.
type TokenCreated struct {
	Token string `json:"token"`
	TokenInfo
}

// CA describes the mesh's certificate authority.
func (c *Client) CA(ctx context.Context) (*CAInfo, error) {
	var out CAInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/ca", nil, &out)
	return &out, err
}

// ImportCA replaces the signer with an operator's intermediate. It sends the signing
// key, so it refuses to do that over plain HTTP to another host.
func (c *Client) ImportCA(ctx context.Context, req CAImportRequest) (*CAInfo, error) {
	if c.plaintextRemote() {
		return nil, fmt.Errorf("refusing to send a CA key in clear to %s: import on a node's own host (its loopback API) or over HTTPS (--http-tls-cert)", c.base())
	}
	var out CAInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/ca/import", req, &out)
	return &out, err
}

// RotateCA starts a root rotation (finish false) or finishes one.
func (c *Client) RotateCA(ctx context.Context, finish bool) (*CAInfo, error) {
	var out CAInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/ca/rotate", CARotateRequest{Finish: finish}, &out)
	return &out, err
}

// CreateToken creates a join token for the VMs of a WorkloadGroup ("namespace/name").
func (c *Client) CreateToken(ctx context.Context, group string, ttl time.Duration) (*TokenCreated, error) {
	var out TokenCreated
	err := c.do(ctx, http.MethodPost, "/api/v1/ca/tokens", TokenRequest{WorkloadGroup: group, TTL: ttl.String()}, &out)
	return &out, err
}

// Tokens lists the join tokens.
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var out []TokenInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/ca/tokens", nil, &out)
	return out, err
}

// RevokeToken revokes a join token.
func (c *Client) RevokeToken(ctx context.Context, id string) (*TokenInfo, error) {
	var out TokenInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/ca/tokens/"+url.PathEscape(id)+"/revoke", nil, &out)
	return &out, err
}

// CredentialRequest stores a gateway credential (what a Gateway server's
// credentialName names): PEM certificate chain, its private key, and optionally the
// CA certificates client certificates must chain to (MUTUAL).
type CredentialRequest struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Cert      string `json:"cert"`
	Key       string `json:"key"`
	CA        string `json:"ca,omitempty"`
}

// CredentialInfo describes a gateway credential: never its key.
type CredentialInfo struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Subject   string    `json:"subject"`
	DNSNames  []string  `json:"dnsNames,omitempty"`
	NotAfter  time.Time `json:"notAfter"`
	SHA256    string    `json:"sha256"`
	HasCA     bool      `json:"hasCA"`
	Updated   time.Time `json:"updated"`
}

// PutCredential stores (or replaces) a gateway credential. It sends a private key, so
// it refuses to do that over plain HTTP to another host.
func (c *Client) PutCredential(ctx context.Context, req CredentialRequest) (*CredentialInfo, error) {
	if c.plaintextRemote() {
		return nil, fmt.Errorf("refusing to send a private key in clear to %s: run this on a node's own host (its loopback API) or over HTTPS (--http-tls-cert)", c.base())
	}
	var out CredentialInfo
	err := c.do(ctx, http.MethodPost, "/api/v1/ca/credentials", req, &out)
	return &out, err
}

// Credentials lists the gateway credentials.
func (c *Client) Credentials(ctx context.Context) ([]CredentialInfo, error) {
	var out []CredentialInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/ca/credentials", nil, &out)
	return out, err
}

// DeleteCredential removes the gateway credential ns/name.
func (c *Client) DeleteCredential(ctx context.Context, ns, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/ca/credentials/"+url.PathEscape(ns)+"/"+url.PathEscape(name), nil, nil)
}
