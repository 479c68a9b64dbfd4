package store

import (
	"context"
	"errors"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

const weDoc = `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-10.0.0.5, namespace: default}
spec: {address: 10.0.0.5, labels: {app: ratings}}
`

func TestPutWithLeaseEndsWithItsLease(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	sp := RegistrySpace("vm")
	first, err := s.Client().Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Client().Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	r := decodeOne(t, weDoc)
	created, err := s.PutWithLease(ctx, sp, r, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	moved := r.Clone()
	moved.Spec.(*networking.WorkloadEntry).Weight = 2
	updated, err := s.PutWithLease(ctx, sp, moved, second.ID)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Meta.Generation != 2 || !updated.Meta.CreationTimestamp.Equal(*created.Meta.CreationTimestamp) {
		t.Errorf("rewritten entry: generation %d, created %v; want 2 and the first write's %v",
			updated.Meta.Generation, updated.Meta.CreationTimestamp, created.Meta.CreationTimestamp)
	}
	// The key now hangs on the second lease: the first one ending leaves it.
	if _, err := s.Client().Revoke(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, sp, r.Key()); err != nil {
		t.Fatalf("after the first lease ended: %v", err)
	}
	if _, err := s.Client().Revoke(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, sp, r.Key()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after its lease ended: %v, want ErrNotFound", err)
	}
	if _, err := s.PutWithLease(ctx, sp, r, second.ID); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("write with an ended lease: %v, want ErrLeaseNotFound", err)
	}
	bad := r.Clone()
	bad.Spec.(*networking.WorkloadEntry).Address = ""
	lease, _ := s.Client().Grant(ctx, 60)
	if _, err := s.PutWithLease(ctx, sp, bad, lease.ID); err == nil {
		t.Fatal("an invalid entry was written")
	}
}
