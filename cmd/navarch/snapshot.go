package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/navarch/navarch/store"
)

const snapshotUsage = "usage: navarch snapshot save <file> | navarch snapshot status <file>"

// runSnapshot saves a node's etcd snapshot to a file (a backup of everything the
// cluster keeps), or describes a snapshot file. A snapshot is restored by starting a
// node with an empty data dir and --restore-from <file>.
func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || (pos[0] != "save" && pos[0] != "status") {
		fmt.Fprintln(stderr, snapshotUsage)
		return errUsage
	}
	path := pos[1]
	if pos[0] == "save" {
		c, err := cf.client()
		if err != nil {
			return err
		}
		if err := saveSnapshot(ctx, path, func(w io.Writer) error {
			_, err := c.Snapshot(ctx, w)
			return err
		}); err != nil {
			return err
		}
	}
	info, err := store.InspectSnapshot(path)
	if err != nil {
		return err
	}
	verb := "snapshot"
	if pos[0] == "save" {
		verb = "saved"
	}
	fmt.Fprintf(stdout, "%s %s: revision %d, %d keys, %d bytes, hash %08x\n", verb, path, info.Revision, info.Keys, info.SizeBytes, info.Hash)
	return nil
}

// saveSnapshot writes what fetch receives to path through a temporary file in the
// same directory, checked before it takes path's place: a failed or damaged
// transfer leaves no file that looks like a backup.
func saveSnapshot(ctx context.Context, path string, fetch func(io.Writer) error) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; save the snapshot under another name", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = fetch(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	if _, err := store.InspectSnapshot(tmp.Name()); err != nil {
		return errors.New("the snapshot received is damaged: " + err.Error())
	}
	return os.Rename(tmp.Name(), path) // CreateTemp made it 0600: the snapshot holds the CA's (encrypted) key and token hashes
}
