package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/navarch/navarch/client"
)

// clientFlags are the flags every CLI command that talks to a node has.
type clientFlags struct {
	server    string
	tokenFile string
	caFile    string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("NAVARCH_SERVER")
	if def == "" {
		def = client.DefaultServer
	}
	fs.StringVar(&f.server, "server", def, "API address of a navarch node, or several, comma-separated, to use the first that answers (or $NAVARCH_SERVER)")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("NAVARCH_TOKEN_FILE"), "file holding the admin token (or $NAVARCH_TOKEN_FILE; $NAVARCH_TOKEN holds the token itself)")
	fs.StringVar(&f.caFile, "ca-file", os.Getenv("NAVARCH_CA_FILE"), "CA certificates (PEM) to check an https:// --server against, instead of the system's (or $NAVARCH_CA_FILE)")
}

func (f *clientFlags) client() (*client.Client, error) {
	token := os.Getenv("NAVARCH_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	c := client.New(f.server, token)
	if f.caFile != "" {
		b, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file: %w", err)
		}
		if err := c.TrustPEM(b); err != nil {
			return nil, fmt.Errorf("%s: %w", f.caFile, err)
		}
	}
	return c, nil
}

// docFlags are the flags of a command that reads documents: -f, repeatable, and -R.
type docFlags struct {
	files     stringList
	recursive bool
}

// register adds the flags to fs; what says what the documents are for ("to apply").
func (d *docFlags) register(fs *flag.FlagSet, what string) {
	fs.Var(&d.files, "f", "file, directory or - (stdin) "+what+"; repeatable")
	fs.BoolVar(&d.recursive, "R", false, "read directories recursively")
}

// given reports whether any -f was given.
func (d *docFlags) given() bool { return len(d.files) > 0 }

// read reads the documents of every -f (readFiles).
func (d *docFlags) read() ([]client.File, error) { return readFiles(d.files, d.recursive, os.Stdin) }

// stringList is a repeatable string flag (-f a.yaml -f b.yaml).
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// readFiles reads every -f argument: a file, a directory (its .yaml, .yml and .json
// files; with recursive, its subdirectories too) or "-" for stdin.
func readFiles(paths []string, recursive bool, stdin io.Reader) ([]client.File, error) {
	var out []client.File
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			out = append(out, client.File{Source: "stdin", Data: string(b)})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, client.File{Source: p, Data: string(b)})
			continue
		}
		files, err := configFiles(p, recursive)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no .yaml, .yml or .json files", p)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, client.File{Source: f, Data: string(b)})
		}
	}
	return out, nil
}

func configFiles(dir string, recursive bool) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}
