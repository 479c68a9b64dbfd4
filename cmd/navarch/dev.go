package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/navarch/navarch/node/devcluster"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "echo":
			return runDevEcho(ctx, args[1:], stdout, stderr)
		case "call":
			return runDevCall(ctx, args[1:], stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] != "cluster" {
		return errors.New("usage: navarch dev cluster [--nodes 3] [--dir D] | dev echo --name v1 --addr host:port | dev call --bootstrap f xds:///host:port")
	}
	fs := flag.NewFlagSet("navarch dev cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 3, "how many nodes")
	dir := fs.String("dir", "", "directory for the nodes' data, logs and cluster.json (default: a new temporary one)")
	if _, err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "navarch-cluster-"); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "starting %d nodes in %s ...\n", *nodes, *dir)
	c, err := devcluster.Start(ctx, devcluster.Config{Binary: bin, Dir: *dir, Nodes: *nodes})
	if err != nil {
		return err
	}
	defer c.Stop()
	for _, n := range c.Nodes() {
		fmt.Fprintf(stdout, "%s  pid %-7d xds %-21s http %-21s gossip %s\n", n.Name, n.PID, n.XDS, n.HTTP, n.Gossip)
	}
	first := c.Nodes()[0]
	fmt.Fprintf(stdout, "\ncluster.json: %s\nexport NAVARCH_SERVER=%s NAVARCH_TOKEN_FILE=%s\nnavarch members\n\nCtrl-C stops the cluster.\n",
		filepath.Join(*dir, "cluster.json"), first.HTTP, c.TokenFile())
	<-ctx.Done()
	fmt.Fprintln(stderr, "stopping the cluster ...")
	return nil
}
