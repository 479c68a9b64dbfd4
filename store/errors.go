package store

import "errors"

var (
	// ErrNotFound is returned when the resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned by Create when the resource already exists.
	ErrExists = errors.New("already exists")
	// ErrConflict is returned when a compare-and-swap finds a newer resourceVersion than
	// the caller read: someone else wrote the resource in between.
	ErrConflict = errors.New("conflict: the resource was modified since it was read")
	// ErrUnavailable is returned when a write cannot be committed because this node
	// cannot reach a quorum of the cluster.
	ErrUnavailable = errors.New("no quorum: the write cannot be committed")
	// ErrLeaseNotFound is returned by PutWithLease when the lease has ended.
	ErrLeaseNotFound = errors.New("the etcd lease has ended")
)

var (
	// ErrCompacted is returned by WatchKindFrom when etcd no longer keeps the
	// revision to watch from: list again, and watch from the list's revision.
	ErrCompacted = errors.New("the revision has been compacted")
	// ErrMemberRemoved is Err's when the member was removed from the cluster (navarch
	// members remove) and stopped.
	ErrMemberRemoved = errors.New("etcd stopped: this member was removed from the cluster")
	// ErrFutureRevision is returned by WatchKindFrom for a revision the store has not
	// reached.
	ErrFutureRevision = errors.New("the revision is ahead of the store")
)
