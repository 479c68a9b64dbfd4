package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/adapters/vm"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/store"
)

// The registry API lets an external source write inventory the way a built-in adapter
// does: ServiceEntries and WorkloadEntries in the source's own key space, kept apart
// from user configuration (navarch registry shows their source). The benchmarks use
// it to churn endpoints as an adapter would.

var sourceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// registrySpace returns the space of the request's source, or answers 400. The
// sources navarch's own adapters write (vm, consul.<dc>, kubernetes.<cluster>) are theirs alone: an
// entry written there by hand would be overwritten or, by a sync, would delete
// what they registered.
func registrySpace(w http.ResponseWriter, r *http.Request) (store.Space, bool) {
	src := r.PathValue("source")
	if !sourceName.MatchString(src) || src == "config" {
		writeError(w, http.StatusBadRequest, fmt.Errorf("registry source %q: must be a DNS label-like name (lower case letters, digits, '.', '-') and not \"config\"", src))
		return store.Space{}, false
	}
	if src == vm.Source || strings.HasPrefix(src, consul.SourceName("")) || strings.HasPrefix(src, kubernetes.SourceName("")) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("registry source %q is written by navarch's own adapters (vm: auto-registration, consul.<dc>: the Consul catalog, kubernetes.<cluster>: a Kubernetes cluster); choose another name", src))
		return store.Space{}, false
	}
	return store.RegistrySpace(src), true
}

// registrySync makes the source's inventory exactly the request's documents, as a
// static inventory (a file of VMs kept by a CMDB or Terraform): what the documents
// name is created or updated, what they no longer name is deleted, only what
// changed is written. Only ServiceEntries and WorkloadEntries are inventory.
func (n *Node) registrySync(w http.ResponseWriter, r *http.Request, p *parts) {
	sp, ok := registrySpace(w, r)
	if !ok {
		return
	}
	req, err := decodeRequest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	// A document of a kind navarch does not take is an error here, not skipped as
	// by apply: a sync deletes what the files do not name.
	all, skipped, err := decodeFiles(req)
	errs := []error{err}
	for _, sk := range skipped {
		errs = append(errs, fmt.Errorf("%s: %s %s: %s", sk.Source, sk.Kind, sk.Name, sk.Reason))
	}
	for _, res := range all {
		if res.Kind != api.ServiceEntry && res.Kind != api.WorkloadEntry {
			errs = append(errs, fmt.Errorf("%s: inventory holds only ServiceEntries and WorkloadEntries (apply configuration with navarch apply)", res.Key()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	var st store.SyncStats
	var changes []store.SyncChange
	if req.DryRun {
		st, changes, err = p.store.SyncDryRun(ctx, sp, all)
	} else {
		st, err = p.store.Sync(ctx, sp, all)
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if !req.DryRun {
		n.auditRegistry(r, sp, st.Created, st.Updated, st.Deleted)
	}
	resp := client.SyncResponse{Created: st.Created, Updated: st.Updated, Deleted: st.Deleted, Unchanged: st.Unchanged, DryRun: req.DryRun}
	for _, c := range changes {
		resp.Changes = append(resp.Changes, client.Result{Kind: c.Key.Kind.Name, Namespace: c.Key.Namespace, Name: c.Key.Name, Action: string(c.Action)})
	}
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) registryApply(w http.ResponseWriter, r *http.Request, p *parts) {
	if sp, ok := registrySpace(w, r); ok {
		n.applyTo(w, r, p, sp)
	}
}

func (n *Node) registryDelete(w http.ResponseWriter, r *http.Request, p *parts) {
	if sp, ok := registrySpace(w, r); ok {
		n.deleteFrom(w, r, p, sp)
	}
}
