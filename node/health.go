package node

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// quorumProbeTimeout bounds the linearizable read /readyz makes: a node that cannot
// reach a majority fails it.
const quorumProbeTimeout = time.Second

// readyz answers 200 when the node serves current configuration and takes writes,
// and 503 with the reason otherwise: still starting (and what it waits for), or cut
// off from a majority of the cluster (it still serves its last view to its proxies).
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	p := n.parts.Load()
	if p == nil {
		http.Error(w, "not ready: "+*n.phase.Load(), http.StatusServiceUnavailable)
		return
	}
	select {
	case <-n.ready:
	default:
		http.Error(w, "not ready: "+*n.phase.Load(), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), quorumProbeTimeout)
	defer cancel()
	if _, err := p.store.Revision(ctx); err != nil {
		http.Error(w, fmt.Sprintf("no quorum: this node cannot reach a majority of the cluster (%v); "+
			"it serves its last configuration (revision %d) to its proxies and refuses writes", err, p.view.Revision()),
			http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}
