package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/store"
)

// watch streams the changes to the resources a list request names (GET
// /api/v1/config/{kind}?watch=true[&namespace=][&labelSelector=][&resourceVersion=]),
// as Kubernetes' watch does: one client.WatchEvent a line. With a selector, as in
// Kubernetes, a resource that comes to match is ADDED and one that stops matching is
// DELETED; resuming from a revision, a resource's first event is taken to be its
// change into or out of the selection. From resourceVersion on, the changes
// after that revision; without it, first an ADDED event for each resource there is
// now, then the changes after them. A revision etcd has compacted away (it keeps
// five minutes of history) is refused with 410 Gone: list again, and watch from the
// list's revision. The stream ends with an ERROR event when the node's etcd member
// loses its leader (a node cut off from the quorum cannot say what changes) or the
// node stops; the client watches again, from the last revision it saw, through any
// node. With allowWatchBookmarks=true, as in Kubernetes, a BOOKMARK event whose
// object carries only metadata.resourceVersion tells an idle watch the store's
// revision (at least every store.Config.WatchProgressInterval, well inside the
// history kept), so that its client can resume from there however quiet the kind.
func (n *Node) watch(w http.ResponseWriter, r *http.Request, p *parts, sp store.Space, k *api.Kind, sel labels.Selector) {
	ctx := r.Context()
	ns := r.URL.Query().Get("namespace")
	var initial []*api.Resource
	var from int64
	if rv := r.URL.Query().Get("resourceVersion"); rv != "" {
		var err error
		if from, err = strconv.ParseInt(rv, 10, 64); err != nil || from < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("resourceVersion %q: not a revision", rv))
			return
		}
	} else {
		var err error
		if initial, from, err = p.store.List(ctx, sp, k, ns); err != nil {
			writeError(w, statusOf(err), err)
			return
		}
	}
	batches, err := p.store.WatchKindFrom(ctx, sp, k, ns, from)
	if err != nil {
		if errors.Is(err, store.ErrCompacted) {
			err = fmt.Errorf("watching %s from %w: list again and watch from the list's revision", k.Plural, err)
		}
		writeError(w, statusOf(err), err)
		return
	}

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil { // the headers, so that the client knows the watch began
		return
	}
	enc := json.NewEncoder(w) // one event a line
	send := func(ev client.WatchEvent) bool {
		return enc.Encode(ev) == nil && rc.Flush() == nil
	}
	// matched says of each resource whether the client was told it matches (absent:
	// not known, for a watch resumed from a resourceVersion, until its first event).
	matched := map[api.Key]bool{}
	for _, res := range initial {
		if !sel.Matches(labels.Set(res.Meta.Labels)) {
			continue
		}
		matched[res.Key()] = true
		if !send(watchEvent(client.WatchAdded, res)) {
			return
		}
	}
	resumed := r.URL.Query().Get("resourceVersion") != ""
	bookmarks := r.URL.Query().Get("allowWatchBookmarks") == "true"
	told, toldAt := from, time.Now() // the revision the client can resume from, and since when
	for {
		select {
		case b, ok := <-batches:
			if !ok {
				return
			}
			if b.Err != nil {
				send(client.WatchEvent{Type: client.WatchError, Error: b.Err.Error()})
				return
			}
			for _, e := range b.Events {
				if e.Resource == nil {
					continue
				}
				typ, res := client.WatchModified, e.Resource
				switch {
				case e.Deleted:
					typ, res = client.WatchDeleted, res.Clone()
					res.Meta.ResourceVersion = store.FormatRevision(e.Revision)
				case e.Created:
					typ = client.WatchAdded
				}
				if !sel.Empty() {
					was, known := matched[e.Key]
					if !known && resumed && !e.Created {
						was = true // a resumed watch's client may hold it
					}
					is := typ != client.WatchDeleted && sel.Matches(labels.Set(res.Meta.Labels))
					switch {
					case !was && !is:
						matched[e.Key] = false
						continue
					case !was:
						typ = client.WatchAdded
					case !is:
						typ = client.WatchDeleted
					}
					matched[e.Key] = is
				}
				if !send(watchEvent(typ, res)) {
					return
				}
				told, toldAt = e.Revision, time.Now()
			}
			// An idle watch is told the revision when etcd reports progress; one whose
			// changes the selector filters out, as often.
			if bookmarks && b.Revision > told && (len(b.Events) == 0 || time.Since(toldAt) >= n.cfg.Store.WatchProgressInterval) {
				if !send(bookmarkEvent(k, b.Revision)) {
					return
				}
				told, toldAt = b.Revision, time.Now()
			}
		case <-n.watchesEnd:
			send(client.WatchEvent{Type: client.WatchError, Error: "the node is stopping: watch again through another node"})
			return
		case <-ctx.Done():
			return
		}
	}
}

// watchEvent is the event of type typ for res.
func watchEvent(typ string, res *api.Resource) client.WatchEvent {
	b, err := res.MarshalJSON()
	if err != nil {
		return client.WatchEvent{Type: client.WatchError, Error: fmt.Sprintf("encoding %s: %v", res.Key(), err)}
	}
	return client.WatchEvent{Type: typ, Object: b}
}

// bookmarkEvent is the BOOKMARK event of a watch of kind k at revision rev: its
// object has the kind's apiVersion and kind, and no more metadata than the revision.
func bookmarkEvent(k *api.Kind, rev int64) client.WatchEvent {
	b, err := json.Marshal(map[string]any{
		"apiVersion": k.APIVersion(),
		"kind":       k.Name,
		"metadata":   map[string]string{"resourceVersion": store.FormatRevision(rev)},
	})
	if err != nil {
		return client.WatchEvent{Type: client.WatchError, Error: fmt.Sprintf("encoding a bookmark: %v", err)}
	}
	return client.WatchEvent{Type: client.WatchBookmark, Object: b}
}
