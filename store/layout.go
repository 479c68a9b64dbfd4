package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Layout is the version of how navarch keeps its data in etcd: the keys of
// DESIGN.md, resources as Istio's JSON, the CA's and the registry sources' records.
// A build that changes any of it raises Layout and migrates the data, and a node
// refuses to run on data of a layout newer than its own (CheckLayout), since a build
// rolled back would misread what a newer one wrote. The cluster's data records its
// layout at LayoutKey from the first start on.
//
// A build that raises Layout must not migrate while nodes of older builds still run
// (they checked the layout when they started, not since): gossip tells each node's
// build (navarch members), which is how it can wait until every node runs it.
const Layout = 1

// LayoutKey holds the layout of the cluster's data, as JSON LayoutRecord.
const LayoutKey = Root + "meta/layout"

// LayoutRecord is the value of LayoutKey.
type LayoutRecord struct {
	Layout int `json:"layout"`
	// WrittenBy is the build that wrote the data in this layout (navarch version).
	WrittenBy string `json:"written_by"`
}

// ErrNewerLayout is returned by CheckLayout when the data is in a layout newer than
// this build's.
var ErrNewerLayout = errors.New("the cluster's data is in a newer layout than this build reads")

// CheckLayout reads the layout this member's copy of the data is in, and fails with
// ErrNewerLayout when it is newer than Layout. Data that records none yet (a new
// cluster, or one written before the layout was recorded, which is layout 1) is
// recorded as Layout, written by build, when this member can write; when it cannot
// (no quorum), the next node start records it.
func (s *Store) CheckLayout(ctx context.Context, build string) (LayoutRecord, error) {
	resp, err := s.cli.Get(ctx, LayoutKey, clientv3.WithSerializable())
	if err != nil {
		return LayoutRecord{}, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		rec := LayoutRecord{Layout: Layout, WrittenBy: build}
		b, _ := json.Marshal(rec)
		_, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(LayoutKey), "=", 0)).
			Then(clientv3.OpPut(LayoutKey, string(b))).
			Commit()
		if err != nil {
			return rec, mapErr(err)
		}
		return s.CheckLayout(ctx, build) // what was recorded, by this node or another
	}
	var rec LayoutRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil || rec.Layout < 1 {
		return rec, fmt.Errorf("%w: %s holds %q, which this build cannot read", ErrNewerLayout, LayoutKey, resp.Kvs[0].Value)
	}
	if rec.Layout > Layout {
		return rec, fmt.Errorf("%w: layout %d, written by navarch %s; this build reads layout %d: run %s or a later build",
			ErrNewerLayout, rec.Layout, rec.WrittenBy, Layout, rec.WrittenBy)
	}
	return rec, nil
}
