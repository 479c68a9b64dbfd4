package xds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// A RequestAuthentication rule may name only its issuer, as in Istio: the key set is
// then the one the issuer's OpenID discovery document (<issuer>/.well-known/openid-configuration)
// names as jwks_uri. IssuerDiscovery fetches those documents, from the node, in the
// background, and hands the xDS server snapshots that carry what it found (registry
// Snapshot.Issuer); the build never waits for it. Until an issuer's document has been
// read its tokens are refused (the rule gets a key set nothing is signed with, as for
// any key set Envoy cannot get); a document that cannot be read is reported in the
// build's errors, and retried. A document read once is read again every
// discoveryRefresh, and its last good answer kept while a later read fails.
//
// The key set itself is fetched by Envoy, as for a rule's jwksUri: its host must be a
// service the proxy sees (see jwt.go).

const (
	discoverySuffix  = "/.well-known/openid-configuration"
	discoveryRefresh = jwksRefresh
	discoveryTimeout = 5 * time.Second
	discoveryMaxBody = 1 << 20
	discoveryRetry   = 5 * time.Second // doubling to discoveryRefresh after failures
)

// IssuerDiscovery is a SnapshotSource that adds to the snapshots of another what OpenID
// discovery found for the issuers they name. Run does the fetching; without it,
// snapshots carry nothing and changes are not passed on.
type IssuerDiscovery struct {
	src    SnapshotSource
	client *http.Client
	log    *slog.Logger

	changes chan struct{}
	wake    chan struct{}

	mu         sync.Mutex
	wanted     map[string]bool            // issuers of the current snapshot without key sets
	due        map[string]time.Time       // when to read an issuer's document next
	backoff    map[string]time.Duration   // the wait after an issuer's next failure
	found      map[string]registry.Issuer // replaced, never changed: snapshots share it
	version    uint64                     // counts replacements of found
	foundAt    time.Time                  // when found was last replaced
	base       *registry.Snapshot         // src's last snapshot
	out        *registry.Snapshot         // base with found at outVersion; nil: to be made
	outVersion uint64
}

// NewIssuerDiscovery returns a discovery in front of src that fetches with client (a
// client with a timeout of its own is not needed: each read is bounded).
func NewIssuerDiscovery(src SnapshotSource, client *http.Client, log *slog.Logger) *IssuerDiscovery {
	return &IssuerDiscovery{
		src:     src,
		client:  client,
		log:     log.With("component", "oidc"),
		changes: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		wanted:  map[string]bool{},
		found:   map[string]registry.Issuer{},
		due:     map[string]time.Time{},
		backoff: map[string]time.Duration{},
	}
}

var _ SnapshotSource = (*IssuerDiscovery)(nil)

// Changes signals a change of src or of what discovery found.
func (d *IssuerDiscovery) Changes() <-chan struct{} { return d.changes }

// Snapshot returns src's snapshot with what discovery found; the same pointer as long
// as neither changed.
func (d *IssuerDiscovery) Snapshot() *registry.Snapshot {
	base := d.src.Snapshot()
	d.mu.Lock()
	defer d.mu.Unlock()
	if base != d.base {
		d.base, d.out = base, nil
		if d.want(issuersWithoutKeys(base)) {
			signal(d.wake)
		}
	}
	if d.out != nil && d.outVersion == d.version {
		return d.out
	}
	out := base
	if len(d.found) > 0 {
		out = base.WithIssuers(d.found)
		if d.out != nil {
			// Only discovery changed: latency is measured from its change.
			out.ChangedAt = d.foundAt
		}
	}
	d.out, d.outVersion = out, d.version
	return out
}

// want makes issuers the wanted set; it reports whether any is new.
func (d *IssuerDiscovery) want(issuers map[string]bool) bool {
	added := false
	for iss := range issuers {
		if !d.wanted[iss] {
			added = true
			if _, ok := d.due[iss]; !ok {
				d.due[iss] = time.Time{}
			}
		}
	}
	for iss := range d.wanted {
		if !issuers[iss] {
			delete(d.due, iss)
			delete(d.backoff, iss)
		}
	}
	d.wanted = issuers
	return added
}

// Run passes src's changes on and reads discovery documents as they are due, until
// ctx ends.
func (d *IssuerDiscovery) Run(ctx context.Context) error {
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.src.Changes():
				signal(d.changes)
			}
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := d.discover(ctx)
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// discover reads the documents that are due, all at once, records what they say and
// returns when the next is due.
func (d *IssuerDiscovery) discover(ctx context.Context) time.Time {
	now := time.Now()
	d.mu.Lock()
	var due []string
	for iss, at := range d.due {
		if !at.After(now) {
			due = append(due, iss)
		}
	}
	d.mu.Unlock()

	results := make([]registry.Issuer, len(due))
	var wg sync.WaitGroup
	for i, iss := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uri, err := d.fetch(ctx, iss)
			results[i] = registry.Issuer{JWKSURI: uri}
			if err != nil {
				results[i].Err = err.Error()
			}
		}()
	}
	wg.Wait()

	d.mu.Lock()
	defer d.mu.Unlock()
	found := maps.Clone(d.found)
	for i, iss := range due {
		if !d.wanted[iss] {
			continue // no longer named while it was read
		}
		r := results[i]
		if r.Err == "" {
			d.due[iss], d.backoff[iss] = time.Now().Add(discoveryRefresh), 0
			if found[iss] != r {
				d.log.Info("JWT issuer discovered", "issuer", iss, "jwks_uri", r.JWKSURI)
			}
			found[iss] = r
			continue
		}
		wait := max(d.backoff[iss], discoveryRetry)
		d.due[iss], d.backoff[iss] = time.Now().Add(wait), min(2*wait, discoveryRefresh)
		if prev, ok := found[iss]; ok && prev.JWKSURI != "" {
			d.log.Warn("reading a JWT issuer's discovery document failed; keeping its last key set URI", "issuer", iss, "err", r.Err, "retry_in", wait)
			continue
		}
		d.log.Warn("reading a JWT issuer's discovery document failed; its tokens are refused", "issuer", iss, "err", r.Err, "retry_in", wait)
		found[iss] = r
	}
	maps.DeleteFunc(found, func(iss string, _ registry.Issuer) bool { return !d.wanted[iss] })
	if !maps.Equal(found, d.found) {
		d.found, d.foundAt = found, time.Now()
		d.version++
		signal(d.changes)
	}
	next := now.Add(discoveryRefresh)
	for _, at := range d.due {
		if at.Before(next) {
			next = at
		}
	}
	return next
}

// fetch reads an issuer's discovery document and returns the jwks_uri it names.
func (d *IssuerDiscovery) fetch(ctx context.Context, issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("the issuer is not an http(s) URL, so it has no discovery document: give the rule jwks or jwksUri")
	}
	doc := strings.TrimSuffix(issuer, "/") + discoverySuffix
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, doc, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", doc, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, discoveryMaxBody+1))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", doc, err)
	}
	if len(body) > discoveryMaxBody {
		return "", fmt.Errorf("GET %s: the document is over %d bytes", doc, discoveryMaxBody)
	}
	var cfg struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		return "", fmt.Errorf("GET %s: not an OpenID discovery document: %v", doc, err)
	}
	if cfg.JWKSURI == "" {
		return "", fmt.Errorf("GET %s: the document has no jwks_uri", doc)
	}
	if ju, err := url.Parse(cfg.JWKSURI); err != nil || (ju.Scheme != "https" && ju.Scheme != "http") || ju.Host == "" {
		return "", fmt.Errorf("GET %s: jwks_uri %q is not an http(s) URL", doc, cfg.JWKSURI)
	}
	return cfg.JWKSURI, nil
}

// issuersWithoutKeys returns the issuers of the snapshot's JWT rules that give neither
// jwks nor jwksUri.
func issuersWithoutKeys(snap *registry.Snapshot) map[string]bool {
	out := map[string]bool{}
	for _, r := range snap.Config(api.RequestAuthentication) {
		for _, rule := range r.Spec.(*security.RequestAuthentication).JwtRules {
			if rule.Jwks == "" && rule.JwksUri == "" && rule.Issuer != "" {
				out[rule.Issuer] = true
			}
		}
	}
	return out
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
