package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateChecksFilesWithoutANode: validate passes what apply would take and
// fails, with apply's error, on what it would refuse; no node is involved.
func TestValidateChecksFilesWithoutANode(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n"), 0o644)
	os.WriteFile(bad, []byte("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews, subsets: [{name: v1}, {name: v1}]}\n"), 0o644)

	var stdout, stderr bytes.Buffer
	t.Setenv("NAVARCH_SERVER", "http://127.0.0.1:1") // nothing listens: validate must not need it
	if code := run(context.Background(), []string{"validate", "-f", good}, &stdout, &stderr); code != 0 {
		t.Fatalf("validate of a good file: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "good.yaml: 1 resources valid") || !strings.Contains(stderr.String(), "skipped") {
		t.Errorf("validate printed %q and %q", stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"validate", "-f", good, "-f", bad}, &stdout, &stderr); code == 0 {
		t.Fatalf("validate of a bad file exited 0: %s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "bad.yaml: document 1: DestinationRule default/reviews: spec.subsets[1].name:") {
		t.Errorf("validate's error: %q", stderr.String())
	}
}

// TestValidateWarns: a valid document Istio warns of passes, with the warning on
// stderr.
func TestValidateWarns(t *testing.T) {
	f := filepath.Join(t.TempDir(), "dr.yaml")
	os.WriteFile(f, []byte("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"+
		"spec: {host: reviews, trafficPolicy: {outlierDetection: {consecutiveErrors: 5}}}\n"), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"validate", "-f", f}, &stdout, &stderr); code != 0 {
		t.Fatalf("validate: exit %d: %s", code, stderr.String())
	}
	want := f + ": DestinationRule default/reviews: spec.trafficPolicy.outlierDetection.consecutiveErrors: " +
		"outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead\n"
	if stderr.String() != "Warning: "+want || !strings.Contains(stdout.String(), "1 resources valid") {
		t.Errorf("validate printed %q and %q; want the warning %q", stdout.String(), stderr.String(), want)
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"validate", "--warnings-as-errors", "-f", f}, &stdout, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "1 warning(s), which --warnings-as-errors makes an error") {
		t.Errorf("validate --warnings-as-errors: exit %d: %s", code, stderr.String())
	}
}
