package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/ca"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/store"
)

// The CA's admin API (client/ca.go lists it). It sits behind the admin token with the
// rest of /api/. An import carries a CA key: the node takes it over HTTPS or from its
// own host only.

func (n *Node) caRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/ca", n.withParts(n.caShow))
	mux.HandleFunc("POST /api/v1/ca/import", n.withParts(n.caImport))
	mux.HandleFunc("POST /api/v1/ca/rotate", n.withParts(n.caRotate))
	mux.HandleFunc("GET /api/v1/ca/tokens", n.withParts(n.tokenList))
	mux.HandleFunc("POST /api/v1/ca/tokens", n.withParts(n.tokenCreate))
	mux.HandleFunc("POST /api/v1/ca/tokens/{id}/revoke", n.withParts(n.tokenRevoke))
	mux.HandleFunc("GET /api/v1/ca/credentials", n.withParts(n.credentialList))
	mux.HandleFunc("POST /api/v1/ca/credentials", n.withParts(n.credentialPut))
	mux.HandleFunc("DELETE /api/v1/ca/credentials/{namespace}/{name}", n.withParts(n.credentialDelete))
}

func (n *Node) caShow(w http.ResponseWriter, _ *http.Request, p *parts) {
	n.writeCAInfo(w, p)
}

func (n *Node) writeCAInfo(w http.ResponseWriter, p *parts) {
	info, err := p.ca.Info()
	if err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	out := client.CAInfo{TrustDomain: info.TrustDomain, Source: info.Source, Rotating: info.Rotating, Updated: info.Updated,
		KEKID: info.KEKID, TrustBundle: info.BundlePEM, CertTTL: n.cfg.CA.DefaultTTL.String(), MaxCertTTL: n.cfg.CA.MaxTTL.String()}
	for _, c := range info.Roots {
		out.Roots = append(out.Roots, certInfo(c))
	}
	for _, c := range info.Chain {
		out.Chain = append(out.Chain, certInfo(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func certInfo(c ca.CertInfo) client.CertInfo {
	return client.CertInfo{Subject: c.Subject, Issuer: c.Issuer, Serial: c.Serial, NotBefore: c.NotBefore, NotAfter: c.NotAfter, SHA256: c.Fingerprint, PEM: c.PEM}
}

// keySafe answers 403 and reports false when a request carrying a private key came
// over plain HTTP from another host.
func keySafe(w http.ResponseWriter, r *http.Request, what string) bool {
	if host, _, _ := net.SplitHostPort(r.RemoteAddr); r.TLS == nil && !client.IsLoopback(host) {
		writeError(w, http.StatusForbidden, fmt.Errorf("%s must not cross the network in clear: send it on the node's own host (its loopback API) or over HTTPS (--http-tls-cert); the key sent is not used", what))
		return false
	}
	return true
}

func (n *Node) caImport(w http.ResponseWriter, r *http.Request, p *parts) {
	if !keySafe(w, r, "a CA key") {
		return
	}
	var req client.CAImportRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the import request: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	f := ca.ImportFiles{Cert: []byte(req.Cert), Key: []byte(req.Key), Chain: []byte(req.Chain), Root: []byte(req.Root)}
	if err := p.ca.Import(ctx, f); err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	n.writeCAInfo(w, p)
}

func (n *Node) caRotate(w http.ResponseWriter, r *http.Request, p *parts) {
	var req client.CARotateRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the rotate request: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	rotate := p.ca.Rotate
	if req.Finish {
		rotate = p.ca.FinishRotation
	}
	if err := rotate(ctx); err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	n.writeCAInfo(w, p)
}

func (n *Node) tokenCreate(w http.ResponseWriter, r *http.Request, p *parts) {
	var req client.TokenRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the token request: %w", err))
		return
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("ttl %q: must be a duration such as 1h or 30m", req.TTL))
		return
	}
	if req.WorkloadGroup == "" {
		writeError(w, http.StatusBadRequest, errors.New("workloadGroup must be set (namespace/name)"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	token, info, err := p.ca.CreateToken(ctx, req.WorkloadGroup, ttl)
	if err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, client.TokenCreated{Token: token, TokenInfo: tokenInfo(info)})
}

func (n *Node) tokenList(w http.ResponseWriter, r *http.Request, p *parts) {
	list, err := p.ca.Tokens(r.Context())
	if err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	out := make([]client.TokenInfo, 0, len(list))
	for _, t := range list {
		out = append(out, tokenInfo(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) tokenRevoke(w http.ResponseWriter, r *http.Request, p *parts) {
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	info, err := p.ca.RevokeToken(ctx, r.PathValue("id"))
	if err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, tokenInfo(info))
}

func tokenInfo(t ca.TokenInfo) client.TokenInfo {
	status := "valid"
	switch {
	case t.Revoked:
		status = "revoked"
	case time.Now().After(t.Expires):
		status = "expired"
	}
	return client.TokenInfo{ID: t.ID, WorkloadGroup: t.WorkloadGroup, Identity: t.Identity.SPIFFE(),
		Created: t.Created, Expires: t.Expires, Revoked: t.Revoked, Status: status}
}

// caStatus maps the CA's errors to HTTP status codes.
func caStatus(err error) int {
	switch {
	case errors.Is(err, ca.ErrRefused):
		return http.StatusBadRequest
	case errors.Is(err, ca.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ca.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ca.ErrNotReady), errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return statusOf(err)
}

func (n *Node) credentialList(w http.ResponseWriter, r *http.Request, p *parts) {
	list, err := p.ca.Credentials(r.Context())
	if err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	out := []client.CredentialInfo{}
	for _, c := range list {
		out = append(out, credentialInfo(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) credentialPut(w http.ResponseWriter, r *http.Request, p *parts) {
	if !keySafe(w, r, "a credential's private key") {
		return
	}
	var req client.CredentialRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the credential: %w", err))
		return
	}
	if req.Namespace == "" {
		req.Namespace = api.DefaultNamespace
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	info, err := p.ca.PutCredential(ctx, req.Namespace, req.Name, []byte(req.Cert), []byte(req.Key), []byte(req.CA))
	if err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, credentialInfo(info))
}

func (n *Node) credentialDelete(w http.ResponseWriter, r *http.Request, p *parts) {
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := p.ca.DeleteCredential(ctx, r.PathValue("namespace"), r.PathValue("name")); err != nil {
		writeError(w, caStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func credentialInfo(c ca.CredentialInfo) client.CredentialInfo {
	return client.CredentialInfo{Namespace: c.Namespace, Name: c.Name, Subject: c.Subject, DNSNames: c.DNSNames,
		NotAfter: c.NotAfter, SHA256: c.Fingerprint, HasCA: c.HasCA, Updated: c.Updated}
}
