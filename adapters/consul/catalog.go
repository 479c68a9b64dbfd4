package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"

	capi "github.com/hashicorp/consul/api"
)

// catalog is one datacenter's catalog as its watchers last read it. The watchers
// write it, the sync loop reads it; mu guards everything. Every change of what a sync
// would write bumps version and signals changed.
type catalog struct {
	changed chan struct{} // capacity 1: signals coalesce

	mu       sync.Mutex
	listed   bool // the service list was read at least once
	listErr  error
	services map[string]*serviceState
	// config is each followed kind's config entries (configKinds) as last read;
	// configErr, why the last read of a kind failed.
	config    map[string][]capi.ConfigEntry
	configErr map[string]error
	version   uint64
	force     bool // a full re-sync is due even if nothing changed
}

// serviceState is what one service's watcher last read.
type serviceState struct {
	entries []*capi.ServiceEntry
	loaded  bool  // read at least once
	err     error // the last read failed
	cancel  context.CancelFunc
}

func newCatalog() *catalog {
	return &catalog{changed: make(chan struct{}, 1), services: map[string]*serviceState{},
		config: map[string][]capi.ConfigEntry{}, configErr: map[string]error{}}
}

// signal wakes the sync loop; signals coalesce.
func (c *catalog) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// forceSync asks the sync loop for a full re-sync and a status refresh.
func (c *catalog) forceSync() {
	c.mu.Lock()
	c.force = true
	c.mu.Unlock()
	c.signal()
}

// setList records a read of the service list: services no longer listed are dropped
// (their watchers stopped) and new ones get a watcher from start.
func (c *catalog) setList(names map[string][]string, start func(name string) *serviceState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := !c.listed || c.listErr != nil
	c.listed, c.listErr = true, nil
	for name, st := range c.services {
		if _, ok := names[name]; !ok {
			st.cancel()
			delete(c.services, name)
			changed = true
		}
	}
	for name := range names {
		if _, ok := c.services[name]; !ok {
			c.services[name] = start(name)
			changed = true
		}
	}
	if changed {
		c.version++
		c.signal()
	}
}

// setListErr records a failed read of the service list.
func (c *catalog) setListErr(err error) {
	c.mu.Lock()
	c.listErr = err
	c.mu.Unlock()
	c.signal()
}

// setService records a read of one service, unless its watcher was replaced or
// stopped meanwhile (st is no longer the service's state).
func (c *catalog) setService(name string, st *serviceState, entries []*capi.ServiceEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.services[name] != st {
		return
	}
	st.entries, st.loaded, st.err = entries, true, nil
	c.version++
	c.signal()
}

// setServiceErr records a failed read of one service.
func (c *catalog) setServiceErr(name string, st *serviceState, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.services[name] != st {
		return
	}
	st.err = err
	c.signal()
}

// setConfig records a read of one kind's config entries.
func (c *catalog) setConfig(kind string, entries []capi.ConfigEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.config[kind] = entries
	delete(c.configErr, kind)
	c.version++
	c.signal()
}

// setConfigErr records a failed read of one kind's config entries.
func (c *catalog) setConfigErr(kind string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.configErr[kind] = err
	c.signal()
}

// stopAll stops every service watcher.
func (c *catalog) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.services {
		st.cancel()
	}
}

// catalogView is what one sync works from.
type catalogView struct {
	// listed: the service list was read at least once.
	listed bool
	// complete: the list and every listed service were read at least once, so the
	// services are the whole catalog. A term's first sync waits for it: a sync before
	// would delete the services not read yet, which the previous node had written.
	complete bool
	services map[string][]*capi.ServiceEntry
	defaults protocolDefaults
	version  uint64
	force    bool
	err      error // why the view may be out of date; nil when every last read succeeded
}

// view returns the catalog as it is now and clears the force flag.
func (c *catalog) view() catalogView {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := catalogView{listed: c.listed, complete: c.listed, services: make(map[string][]*capi.ServiceEntry, len(c.services)),
		defaults: defaultsOf(c.config), version: c.version, force: c.force}
	for _, kind := range configKinds {
		if _, ok := c.config[kind]; !ok {
			v.complete = false // the services' protocols are not known yet
		}
	}
	c.force = false
	var failed []string
	var first error
	example := ""
	for _, name := range sortedKeys(c.services) {
		st := c.services[name]
		if !st.loaded {
			v.complete = false
		} else {
			v.services[name] = st.entries
		}
		if st.err != nil {
			failed = append(failed, name)
			// The example shown is the first failure, or the first refusal for too
			// many connections, which says what to do.
			if first == nil || (!errors.Is(first, errConnLimit) && errors.Is(st.err, errConnLimit)) {
				first, example = st.err, name
			}
		}
	}
	switch {
	case c.listErr != nil && (errors.Is(c.listErr, errConnLimit) || !errors.Is(first, errConnLimit)):
		v.err = fmt.Errorf("reading the service list: %w", c.listErr)
	case len(failed) == 1:
		v.err = fmt.Errorf("reading service %s: %w", example, first)
	case len(failed) > 1:
		v.err = fmt.Errorf("reading %d services (e.g. %s): %w", len(failed), example, first)
	default:
		for _, kind := range configKinds {
			if err := c.configErr[kind]; err != nil {
				v.err = fmt.Errorf("reading the %s config entries: %w", kind, err)
				break
			}
		}
	}
	return v
}
