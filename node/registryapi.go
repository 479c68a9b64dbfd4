package node

import (
	"fmt"
	"net/http"
	"regexp"

	"github.com/navarch/navarch/store"
)

// The registry API lets an external source write inventory the way a built-in adapter
// does: ServiceEntries and WorkloadEntries in the source's own key space, kept apart
// from user configuration (navarch registry shows their source). The benchmarks use
// it to churn endpoints as an adapter would.

var sourceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// registrySpace returns the space of the request's source, or answers 400.
func registrySpace(w http.ResponseWriter, r *http.Request) (store.Space, bool) {
	src := r.PathValue("source")
	if !sourceName.MatchString(src) || src == "config" {
		writeError(w, http.StatusBadRequest, fmt.Errorf("registry source %q: must be a DNS label-like name (lower case letters, digits, '.', '-') and not \"config\"", src))
		return store.Space{}, false
	}
	return store.RegistrySpace(src), true
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
