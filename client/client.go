package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/navarch/navarch/api"
)

// DefaultServer is the API address the CLI uses unless told otherwise: a node's HTTP
// port on this machine.
const DefaultServer = "http://127.0.0.1:15014"

// Client talks to a node's HTTP API: the first of its servers that answers, as
// etcdctl does with its endpoints.
type Client struct {
	servers []string
	cur     atomic.Int32 // the server that answered last
	token   string
	http    *http.Client
}

// New returns a client of the node at server ("http://host:port", "https://host:port",
// or just "host:port" for HTTP), authenticating with token when it is not empty. An
// https server's certificate is checked against the system's roots unless TrustPEM
// names others.
//
// server may list several nodes, comma-separated: a request goes to the one that
// answered last, and moves on to the next when it cannot be reached or answers 503
// (not ready, no quorum), which means it did nothing with the request.
func New(server, token string) *Client {
	c := &Client{token: token, http: &http.Client{Timeout: 30 * time.Second}}
	for _, s := range strings.Split(server, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		c.servers = append(c.servers, strings.TrimRight(s, "/"))
	}
	if len(c.servers) == 0 {
		c.servers = []string{DefaultServer}
	}
	return c
}

// At returns a client of another node (an address of MemberInfo.HTTP) with c's
// scheme, credentials and trusted CAs.
func (c *Client) At(server string) *Client {
	if !strings.Contains(server, "://") {
		scheme, _, _ := strings.Cut(c.base(), "://")
		server = scheme + "://" + server
	}
	return &Client{servers: []string{strings.TrimRight(server, "/")}, token: c.token, http: c.http}
}

// Servers returns the nodes the client may talk to.
func (c *Client) Servers() []string { return slices.Clone(c.servers) }

// Failover moves the client off the server it talks to now (one whose stream
// ended, say), to the next it was given.
func (c *Client) Failover() { c.next(int(c.cur.Load()) % len(c.servers)) }

// base is the server the client talks to now.
func (c *Client) base() string { return c.servers[int(c.cur.Load())%len(c.servers)] }

// next moves the client from server from to the one after it.
func (c *Client) next(from int) { c.cur.CompareAndSwap(int32(from), int32((from+1)%len(c.servers))) }

// TrustPEM makes the client accept only servers whose certificates chain to the CA
// certificates in pemCerts (the node's --http-tls-cert issuer).
func (c *Client) TrustPEM(pemCerts []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCerts) {
		return errors.New("no PEM certificate found in the CA file")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.http.Transport = tr
	return nil
}

// plaintextRemote reports whether the client talks plain HTTP to another host, where
// what it sends can be read on the way.
func (c *Client) plaintextRemote() bool {
	u, err := url.Parse(c.base())
	if err != nil || u.Scheme != "http" {
		return false
	}
	return !IsLoopback(u.Hostname())
}

// IsLoopback reports whether host (a name or an IP, no port) is this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// APIError is an error answer of the node.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// IsNotFound reports whether err is the node saying a resource does not exist.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.base(), err)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// send makes a request (body, if any, as JSON) and returns the response, whose body
// the caller closes; an error status is returned as an *APIError.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	return c.sendWith(ctx, c.http, method, path, body)
}

// sendWith is send through hc, to each server in turn (from the current one) while
// they cannot be reached or answer 503.
func (c *Client) sendWith(ctx context.Context, hc *http.Client, method, path string, body any) (*http.Response, error) {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	var errs []error
	for range c.servers {
		at := int(c.cur.Load()) % len(c.servers)
		resp, err := c.sendTo(ctx, hc, c.servers[at], method, path, data, body != nil)
		var ae *APIError
		var unreachable unreachableError
		if err == nil || ctx.Err() != nil || len(c.servers) == 1 ||
			!(errors.As(err, &unreachable) || errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable) {
			return resp, err
		}
		errs = append(errs, err)
		c.next(at)
	}
	return nil, everyServer(errs)
}

// everyServer is what each server said when none took a request, on one line.
type everyServer []error

func (e everyServer) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e everyServer) Unwrap() []error { return e }

// unreachableError is the error of a request that never reached its server.
type unreachableError struct{ error }

func (e unreachableError) Unwrap() error { return e.error }

// sendTo makes a request of server.
func (c *Client) sendTo(ctx context.Context, hc *http.Client, server, method, path string, data []byte, hasBody bool) (*http.Response, error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, server+path, rd)
	if err != nil {
		return nil, err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			err = unreachableError{err} // nothing was sent
		}
		return nil, fmt.Errorf("cannot reach navarch at %s: %w", server, err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusMultiStatus {
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("reading the answer of %s: %w", server, err)
		}
		var e ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
		}
		return nil, &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// Apply creates or replaces every resource in files, all or nothing.
func (c *Client) Apply(ctx context.Context, namespace string, files []File) (*ApplyResponse, error) {
	var resp ApplyResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/apply", ApplyRequest{Namespace: namespace, Files: files}, &resp)
	return &resp, err
}

// DryRunApply reports what Apply would do with files, writing nothing.
func (c *Client) DryRunApply(ctx context.Context, namespace string, files []File) (*ApplyResponse, error) {
	var resp ApplyResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/apply", ApplyRequest{Namespace: namespace, Files: files, DryRun: true}, &resp)
	return &resp, err
}

// Analyze asks the node what is wrong with its configuration, with the documents of
// files (none for the configuration as it is) applied on top, writing nothing.
func (c *Client) Analyze(ctx context.Context, namespace string, files []File) (*AnalyzeResponse, error) {
	var resp AnalyzeResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/analyze", ApplyRequest{Namespace: namespace, Files: files}, &resp)
	return &resp, err
}

// DeleteFiles deletes every resource the documents in files name. Resources that do
// not exist are reported in their Result's Error.
func (c *Client) DeleteFiles(ctx context.Context, namespace string, files []File) (*ApplyResponse, error) {
	var resp ApplyResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/delete", ApplyRequest{Namespace: namespace, Files: files}, &resp)
	return &resp, err
}

// Delete deletes one resource.
func (c *Client) Delete(ctx context.Context, kind, namespace, name string) (*ApplyResponse, error) {
	var resp ApplyResponse
	err := c.do(ctx, http.MethodDelete, "/api/v1/config/"+url.PathEscape(kind)+"/"+url.PathEscape(namespace)+"/"+url.PathEscape(name), nil, &resp)
	return &resp, err
}

// List returns the resources of a kind in namespace (every namespace when empty).
func (c *Client) List(ctx context.Context, kind, namespace string) ([]*api.Resource, int64, error) {
	return c.ListFrom(ctx, "", kind, namespace)
}

// ListFrom is List of the configuration a registry source mirrors (a Kubernetes
// cluster's Istio resources, kubernetes.<id>.config); source "" is List.
func (c *Client) ListFrom(ctx context.Context, source, kind, namespace string) ([]*api.Resource, int64, error) {
	return c.ListSelection(ctx, Selection{Kind: kind, Namespace: namespace, Source: source})
}

// Selection names the resources of a list or a watch.
type Selection struct {
	Kind string // a kind's plural, singular or short name
	// Namespace is theirs; "" for every namespace.
	Namespace string
	// Source is the registry source whose mirrored configuration to read; "" for
	// the configuration applied.
	Source string
	// LabelSelector keeps the resources whose labels match it, as Kubernetes'
	// (app=reviews,tier!=db); "" keeps all.
	LabelSelector string
	// Bookmarks asks a watch for BOOKMARK events (WatchEvent.ResourceVersion) while
	// it has nothing else to send, so that it can resume however quiet the kind.
	// Lists ignore it.
	Bookmarks bool
}

// query is the selection as the API's query parameters.
func (s Selection) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"namespace": s.Namespace, "source": s.Source, "labelSelector": s.LabelSelector} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// ListSelection returns the resources sel names and the revision they were read at.
func (c *Client) ListSelection(ctx context.Context, sel Selection) ([]*api.Resource, int64, error) {
	var resp ListResponse
	path := "/api/v1/config/" + url.PathEscape(sel.Kind)
	if q := sel.query(); len(q) > 0 {
		path += "?" + q.Encode()
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return nil, 0, err
	}
	out := make([]*api.Resource, 0, len(resp.Items))
	for _, item := range resp.Items {
		r, err := api.Unmarshal(item)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, resp.Revision, nil
}

// Get returns one resource.
func (c *Client) Get(ctx context.Context, kind, namespace, name string) (*api.Resource, error) {
	return c.GetFrom(ctx, "", kind, namespace, name)
}

// GetFrom is Get of the configuration a registry source mirrors; source "" is Get.
func (c *Client) GetFrom(ctx context.Context, source, kind, namespace, name string) (*api.Resource, error) {
	var raw []byte
	path := "/api/v1/config/" + url.PathEscape(kind) + "/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
	if source != "" {
		path += "?source=" + url.QueryEscape(source)
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return nil, err
	}
	return api.Unmarshal(raw)
}

// Registry returns the node's registry listing.
func (c *Client) Registry(ctx context.Context) (*RegistryListing, error) {
	var out RegistryListing
	err := c.do(ctx, http.MethodGet, "/debug/registry", nil, &out)
	return &out, err
}

// Raw performs a GET of path (e.g. "/debug/proxies") and returns the body.
func (c *Client) Raw(ctx context.Context, path string) ([]byte, error) {
	var raw []byte
	err := c.do(ctx, http.MethodGet, path, nil, &raw)
	return raw, err
}

// Members lists the nodes of the cluster.
func (c *Client) Members(ctx context.Context) ([]MemberInfo, error) {
	var out []MemberInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/members", nil, &out)
	return out, err
}

// RemoveMember takes a (dead) node out of etcd and gossip.
func (c *Client) RemoveMember(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/members/"+url.PathEscape(name)+"/remove", nil, nil)
}

// Snapshot writes a snapshot of the node's etcd database (everything navarch
// keeps: mesh configuration, registry, CA, tokens) to w, and returns its size. The
// snapshot ends with its SHA-256, which a restore checks.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/snapshot", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("receiving the snapshot from %s: %w", c.base(), err)
	}
	return n, nil
}

// Leave makes the node leave the cluster and stop.
func (c *Client) Leave(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/v1/leave", nil, nil)
}

// RegistrySync makes the inventory of a registry source exactly the files'
// ServiceEntries and WorkloadEntries: it creates and updates what they name and
// deletes the rest of the source's entries.
// With dryRun it reports each change it would make and writes nothing.
func (c *Client) RegistrySync(ctx context.Context, source, namespace string, files []File, dryRun bool) (*SyncResponse, error) {
	var resp SyncResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/registry/"+url.PathEscape(source)+"/sync", ApplyRequest{Namespace: namespace, Files: files, DryRun: dryRun}, &resp)
	return &resp, err
}

// RegistryApply creates or replaces inventory (ServiceEntries, WorkloadEntries) of a
// registry source, as an adapter would.
func (c *Client) RegistryApply(ctx context.Context, source string, files []File) (*ApplyResponse, error) {
	var resp ApplyResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/registry/"+url.PathEscape(source)+"/apply", ApplyRequest{Files: files}, &resp)
	return &resp, err
}
