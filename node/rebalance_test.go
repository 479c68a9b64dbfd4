package node

import "testing"

func TestExcessProxies(t *testing.T) {
	tests := []struct {
		name string
		mine int
		all  []int
		want int
	}{
		{"a single node sheds nothing", 900, []int{900}, 0},
		{"balanced", 100, []int{100, 98, 102}, 0},
		{"a little above the share is tolerated", 110, []int{110, 95, 95}, 0},
		{"a node that inherited a dead peer's proxies", 600, []int{600, 300, 0}, 300},
		{"small clusters tolerate a few extra", 6, []int{6, 2, 1}, 0},
		{"one node holds everything after a restart of the others", 30, []int{30, 0, 0}, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := excessProxies(tt.mine, tt.all); got != tt.want {
				t.Fatalf("excessProxies(%d, %v) = %d, want %d", tt.mine, tt.all, got, tt.want)
			}
		})
	}
}

// A node spreads load unless told not to: Istio's never do, and the cluster's
// documentation promises a check every 10 s.
func TestLoadSpreadingIsOnByDefault(t *testing.T) {
	if got := DefaultConfig().RebalanceInterval; got <= 0 {
		t.Fatalf("DefaultConfig().RebalanceInterval = %v, want load spreading on", got)
	}
}
