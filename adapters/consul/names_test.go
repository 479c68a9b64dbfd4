package consul

import (
	"strings"
	"testing"
)

func TestDNSLabel(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		name, in string
		check    func(string) bool
	}{
		{"a valid label is unchanged", "ratings", func(s string) bool { return s == "ratings" }},
		{"upper case gets a hash", "Ratings", func(s string) bool { return strings.HasPrefix(s, "ratings-") && len(s) == len("ratings-")+hashLen }},
		{"underscores become dashes", "web_api", func(s string) bool { return strings.HasPrefix(s, "web-api-") }},
		{"long names are cut", long, func(s string) bool { return len(s) == maxLabel && strings.HasPrefix(s, "aaaa") }},
		{"nothing valid leaves the hash", "___", func(s string) bool { return len(s) == hashLen }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dnsLabel(tt.in)
			if !isDNSLabel(got) || !tt.check(got) {
				t.Fatalf("dnsLabel(%q) = %q", tt.in, got)
			}
			if again := dnsLabel(tt.in); again != got {
				t.Fatalf("dnsLabel(%q) is not stable: %q then %q", tt.in, got, again)
			}
		})
	}
	t.Run("names that differ stay different", func(t *testing.T) {
		seen := map[string]string{}
		for _, in := range []string{"web-api", "web_api", "Web-api", "WEB_API", "web.api"} {
			out := dnsLabel(in)
			if prev, dup := seen[out]; dup {
				t.Fatalf("%q and %q both map to %q", prev, in, out)
			}
			seen[out] = in
		}
	})
}

func TestResourceName(t *testing.T) {
	short := resourceName("ratings", "dc1", "node-1", "ratings-1")
	if short != "ratings.dc1.node-1.ratings-1" {
		t.Fatalf("resourceName = %q", short)
	}
	l := strings.Repeat("a", 63)
	long := resourceName(l, l, l, l)
	if len(long) > maxSubdomain || strings.Contains(long, ".-") {
		t.Fatalf("resourceName of 4 long labels = %q (%d characters)", long, len(long))
	}
	other := resourceName(l, l, l, l[:62]+"b")
	if other == long {
		t.Fatalf("two long names that differ only at the end map to the same %q", long)
	}
}
