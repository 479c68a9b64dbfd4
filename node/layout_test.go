package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/store"
)

// A node refuses to serve data a newer build wrote in a newer layout (a rollback
// too far), and says which build to run.
func TestNodeRefusesDataOfANewerLayout(t *testing.T) {
	dir := t.TempDir()
	run := func(write func(*store.Store)) error {
		cfg := DefaultConfig()
		cfg.Dev, cfg.DataDir, cfg.ClusterSecret = true, dir, "a-fixed-dev-cluster-secret"
		cfg.XDSAddr, cfg.HTTPAddr, cfg.XDSTLSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		select {
		case <-n.ready:
			write(n.parts.Load().store)
			cancel()
			return <-done
		case err := <-done:
			return err
		}
	}
	if err := run(func(st *store.Store) {
		b, _ := json.Marshal(store.LayoutRecord{Layout: store.Layout + 1, WrittenBy: "v9.0.0"})
		if _, err := st.Client().Put(context.Background(), store.LayoutKey, string(b)); err != nil {
			t.Fatal(err)
		}
	}); err != nil {
		t.Fatalf("the first start: %v", err)
	}
	err := run(func(*store.Store) { t.Error("the node served data of a newer layout") })
	if !errors.Is(err, store.ErrNewerLayout) || !strings.Contains(err.Error(), "run v9.0.0 or a later build") {
		t.Fatalf("the start on newer data: %v, want ErrNewerLayout naming the build to run", err)
	}
}
