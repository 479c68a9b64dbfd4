package corpus

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestFilesFindsTheCorpus: from a package one level below the repository's root,
// as Dir expects, Files finds Istio's corpus and only its YAML files.
func TestFilesFindsTheCorpus(t *testing.T) {
	t.Chdir(filepath.Join("..", "..", "api"))
	files := Files(t)
	if !slices.ContainsFunc(files, func(f string) bool { return filepath.Base(f) == "gateway-all.yaml" }) {
		t.Errorf("the corpus's files %v lack gateway-all.yaml", files)
	}
	for _, f := range files {
		if filepath.Ext(f) != ".yaml" {
			t.Errorf("%s is no YAML file", f)
		}
	}
}
