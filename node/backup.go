package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/store"
)

// Scheduled backups (--backup-dir). Every node with a backup dir saves a snapshot
// of its etcd member there each interval, as `navarch snapshot save` does, checked
// (its SHA-256) before it takes its name, and keeps the newest few of its own. Each
// node writes its own series, navarch-<node>-<UTC time>.db, so that a directory
// shared between the nodes' hosts holds one series per node and every host keeps
// backups of its own when it is not shared. A node cut off from a majority saves
// nothing (its database may lack writes the cluster acknowledged) and tries again
// a minute later. The next backup is due an interval after the newest of the
// node's files, so a node restarted often does not save one at every start, and a
// node started after a long stop saves one at once.

// backupRetry is how soon a failed backup is tried again (at most the interval).
const backupRetry = time.Minute

// backupTimeLayout names a backup by when it was taken: sorting by name sorts by
// time.
const backupTimeLayout = "20060102T150405.000Z"

// backups is the node's record of its scheduled backups, for /metrics and gossip.
type backups struct {
	last   atomic.Int64 // Unix nanoseconds of the newest backup, 0 for none
	runs   *prometheus.CounterVec
	size   prometheus.Gauge
	lastTS prometheus.GaugeFunc
}

// newBackups makes the record, its metrics registered with reg when the node
// saves backups (reg not nil), so that an alert on their age fires only on such
// nodes.
func newBackups(reg prometheus.Registerer) *backups {
	b := &backups{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "navarch_backups_total",
			Help: "Scheduled backups (--backup-dir) by result: ok, or failed (no quorum, disk full, ...; the node log says why)."}, []string{"result"}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{Name: "navarch_backup_size_bytes", Help: "The size of the newest scheduled backup."}),
	}
	b.lastTS = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "navarch_backup_last_success_timestamp_seconds",
		Help: "Unix time, in seconds, of the newest scheduled backup of this node (0 for none); alert when it is older than a few intervals."},
		func() float64 { return float64(b.last.Load()) / 1e9 })
	if reg != nil {
		reg.MustRegister(b.runs, b.size, b.lastTS)
	}
	return b
}

// lastTime is when the newest backup was taken, zero for none.
func (b *backups) lastTime() time.Time {
	if ns := b.last.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// backupLoop saves a backup whenever one is due, until ctx ends.
func (n *Node) backupLoop(ctx context.Context, p *parts) {
	cfg := n.cfg.Backups
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		n.log.Error("scheduled backups are off: creating the backup dir", "dir", cfg.Dir, "err", err)
		return
	}
	removeUnfinished(cfg.Dir, n.cfg.Name)
	if files, _ := backupFiles(cfg.Dir, n.cfg.Name); len(files) > 0 {
		n.noteBackup(files[len(files)-1].at, -1)
	}
	for {
		due := time.Until(n.backups.lastTime().Add(cfg.Interval))
		if !wait.Sleep(ctx, due) {
			return
		}
		start := time.Now()
		path, size, err := n.backup(ctx, p.store)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			n.backups.runs.WithLabelValues("failed").Inc()
			n.log.Warn("scheduled backup failed; trying again", "err", err, "in", min(backupRetry, cfg.Interval).String())
			if !wait.Sleep(ctx, min(backupRetry, cfg.Interval)) {
				return
			}
			continue
		}
		n.backups.runs.WithLabelValues("ok").Inc()
		n.noteBackup(time.Now(), size)
		n.log.Info("backup saved", "file", path, "bytes", size, "took", time.Since(start).Round(time.Millisecond).String())
		if err := pruneBackups(cfg.Dir, n.cfg.Name, cfg.Keep); err != nil {
			n.log.Warn("removing old backups", "err", err)
		}
	}
}

// noteBackup records a backup taken at t of size bytes (-1: unknown), and gossips
// when.
func (n *Node) noteBackup(t time.Time, size int64) {
	n.backups.last.Store(t.UnixNano())
	if size >= 0 {
		n.backups.size.Set(float64(size))
	}
	if n.gossip != nil {
		n.gossip.setMeta(func(m *nodeMeta) { m.LastBackup = t.Unix() })
	}
}

// backup saves a snapshot of the member into the backup dir, once the cluster's
// quorum has answered, and returns its file and size.
func (n *Node) backup(ctx context.Context, st *store.Store) (string, int64, error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := st.Revision(qctx)
	cancel()
	if err != nil {
		return "", 0, fmt.Errorf("no quorum, so no backup: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	rc, err := st.Backup(bctx)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	dir := n.cfg.Backups.Dir
	f, err := os.CreateTemp(dir, unfinishedPrefix(n.cfg.Name)+"*")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // nothing once renamed
	size, err := io.Copy(f, rc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("writing %s: %w", tmp, err)
	}
	if _, err := store.InspectSnapshot(tmp); err != nil {
		return "", 0, err
	}
	path := filepath.Join(dir, backupName(n.cfg.Name, time.Now()))
	if err := os.Rename(tmp, path); err != nil {
		return "", 0, err
	}
	if d, err := os.Open(dir); err == nil { // the rename, durable
		d.Sync()
		d.Close()
	}
	return path, size, nil
}

// backupName is the file of node's backup taken at t.
func backupName(node string, t time.Time) string {
	return "navarch-" + node + "-" + t.UTC().Format(backupTimeLayout) + ".db"
}

// unfinishedPrefix begins the names of node's backups being written; "+" is in no
// node's name (validNodeName), so it is no other node's prefix.
func unfinishedPrefix(node string) string { return ".navarch-" + node + "+" }

// backupFile is one of a node's backups.
type backupFile struct {
	path string
	at   time.Time
}

// backupFiles returns node's backups in dir, oldest first. Another node's are left
// out even when its name begins with this one's ("n1" and "n1-b"): the rest of the
// name must be a time.
func backupFiles(dir, node string) ([]backupFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []backupFile
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "navarch-"+node+"-")
		if !ok || e.IsDir() {
			continue
		}
		t, err := time.Parse(backupTimeLayout, strings.TrimSuffix(rest, ".db"))
		if err != nil || !strings.HasSuffix(rest, ".db") {
			continue
		}
		out = append(out, backupFile{filepath.Join(dir, e.Name()), t})
	}
	slices.SortFunc(out, func(a, b backupFile) int { return a.at.Compare(b.at) })
	return out, nil
}

// pruneBackups removes all but the newest keep of node's backups in dir.
func pruneBackups(dir, node string, keep int) error {
	files, err := backupFiles(dir, node)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files[:max(0, len(files)-keep)] {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeUnfinished removes what a backup of node cut short (the node stopped while
// writing it) left in dir.
func removeUnfinished(dir, node string) {
	matches, _ := filepath.Glob(filepath.Join(dir, unfinishedPrefix(node)+"*"))
	for _, m := range matches {
		os.Remove(m)
	}
}
