package ca

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Identity is a workload's identity in the mesh: its namespace and service account in
// a trust domain, written as a SPIFFE ID.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// SPIFFE returns the identity's SPIFFE ID, spiffe://<td>/ns/<ns>/sa/<sa>.
func (id Identity) SPIFFE() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// String returns the SPIFFE ID.
func (id Identity) String() string { return id.SPIFFE() }

// URL returns the SPIFFE ID as a URL, as certificates carry it.
func (id Identity) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount}
}

// Validate checks that every part is a valid name.
func (id Identity) Validate() error {
	if err := validateTrustDomain(id.TrustDomain); err != nil {
		return err
	}
	if !dnsLabel.MatchString(id.Namespace) {
		return fmt.Errorf("namespace %q: must be a DNS label (lower case letters, digits, '-', at most 63)", id.Namespace)
	}
	if !dnsSubdomain.MatchString(id.ServiceAccount) {
		return fmt.Errorf("service account %q: must be a DNS subdomain (lower case letters, digits, '-', '.')", id.ServiceAccount)
	}
	return nil
}

// ParseSPIFFE parses spiffe://<td>/ns/<ns>/sa/<sa>.
func ParseSPIFFE(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	return identityFromURL(u)
}

func identityFromURL(u *url.URL) (Identity, error) {
	s := u.String()
	if u.Scheme != "spiffe" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: must be spiffe://<trust domain>/ns/<namespace>/sa/<service account>", s)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: path must be /ns/<namespace>/sa/<service account>", s)
	}
	id := Identity{TrustDomain: u.Host, Namespace: parts[1], ServiceAccount: parts[3]}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	return id, nil
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
)

func validateTrustDomain(td string) error {
	if !dnsSubdomain.MatchString(td) || strings.Contains(td, "..") {
		return fmt.Errorf("trust domain %q: must be a DNS name (lower case letters, digits, '-', '.')", td)
	}
	return nil
}
