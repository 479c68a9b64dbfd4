package node

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCAImportRefusesPlaintextFromOtherHosts: a CA key or a credential's key that came
// over plain HTTP from another host is refused before it is read.
func TestCAImportRefusesPlaintextFromOtherHosts(t *testing.T) {
	n := &Node{}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/ca/import", strings.NewReader(`{"key":"-----BEGIN EC PRIVATE KEY-----"}`))
	req.RemoteAddr = "192.0.2.7:40000"
	rec := httptest.NewRecorder()
	n.caImport(rec, req, nil) // refused before the node's parts are needed
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "must not cross the network in clear") {
		t.Fatalf("plaintext import from another host: %d %s", rec.Code, rec.Body.String())
	}
	req = httptest.NewRequest(http.MethodPost, "/api/v1/ca/credentials", strings.NewReader(`{"key":"-----BEGIN EC PRIVATE KEY-----"}`))
	req.RemoteAddr = "192.0.2.7:40000"
	rec = httptest.NewRecorder()
	n.credentialPut(rec, req, nil)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("plaintext credential from another host: %d %s", rec.Code, rec.Body.String())
	}
}
