package store

import (
	"context"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodesPrefix holds one key per node, /navarch/nodes/<name>, whose value the node
// writes when it starts (its gossip address, so that a restarted node can find the
// cluster again without --join).
const NodesPrefix = Root + "nodes/"

// PutNode records what a node says about itself.
func (s *Store) PutNode(ctx context.Context, name, value string) error {
	_, err := s.cli.Put(ctx, NodesPrefix+name, value)
	return mapErr(err)
}

// DeleteNode forgets a node.
func (s *Store) DeleteNode(ctx context.Context, name string) error {
	_, err := s.cli.Delete(ctx, NodesPrefix+name)
	return mapErr(err)
}

// Nodes returns what every node recorded, by name. The read is serializable: a node
// that restarts without a quorum can still read it.
func (s *Store) Nodes(ctx context.Context) (map[string]string, error) {
	resp, err := s.cli.Get(ctx, NodesPrefix, clientv3.WithPrefix(), clientv3.WithSerializable())
	if err != nil {
		return nil, mapErr(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), NodesPrefix)] = string(kv.Value)
	}
	return out, nil
}
