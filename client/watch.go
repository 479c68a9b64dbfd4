package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/navarch/navarch/api"
)

// Watch follows the resources sel names, as the node's watch API streams them
// (WatchEvent). resourceVersion "" starts with an ADDED event for every resource
// there is; a revision (a ListResponse's, or the last event's resourceVersion)
// starts after it. With a label selector, a resource that comes to match is ADDED
// and one that stops matching DELETED. Watch returns once the node has begun the
// stream; a revision etcd no longer keeps is an *APIError of status 410 (Gone).
// The channel is closed when the stream ends: ctx ended, or, after an ERROR event,
// the node stopped, lost its quorum or could not be read.
func (c *Client) Watch(ctx context.Context, sel Selection, resourceVersion string) (<-chan WatchEvent, error) {
	q := sel.query()
	q.Set("watch", "true")
	if sel.Bookmarks {
		q.Set("allowWatchBookmarks", "true")
	}
	if resourceVersion != "" {
		q.Set("resourceVersion", resourceVersion)
	}
	// A stream has no deadline: c.http's would end it.
	resp, err := c.sendWith(ctx, &http.Client{Transport: c.http.Transport}, http.MethodGet, "/api/v1/config/"+url.PathEscape(sel.Kind)+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	out := make(chan WatchEvent)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20) // a resource is at most etcd's request size
		for sc.Scan() {
			var ev WatchEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = WatchEvent{Type: WatchError, Error: fmt.Sprintf("decoding the watch stream of %s: %v", c.base(), err)}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Type == WatchError {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		msg := fmt.Sprintf("the watch stream of %s ended", c.base())
		if err := sc.Err(); err != nil {
			msg += ": " + err.Error()
		}
		select {
		case out <- WatchEvent{Type: WatchError, Error: msg}:
		case <-ctx.Done():
		}
	}()
	return out, nil
}

// Resource decodes the event's object.
func (e WatchEvent) Resource() (*api.Resource, error) {
	if len(e.Object) == 0 {
		return nil, fmt.Errorf("a %s event carries no resource", e.Type)
	}
	return api.Unmarshal(e.Object)
}

// ResourceVersion is the revision the event brings its watch to: that of the
// resource of an ADDED, MODIFIED or DELETED event, or a BOOKMARK's; "" for ERROR.
func (e WatchEvent) ResourceVersion() string {
	var obj struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if json.Unmarshal(e.Object, &obj) != nil {
		return ""
	}
	return obj.Metadata.ResourceVersion
}
