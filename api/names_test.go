package api

import (
	"strings"
	"testing"
)

func TestHostError(t *testing.T) {
	cases := []struct {
		host string
		ok   bool
	}{
		{"reviews", true},
		{"reviews.prod.svc.cluster.local", true},
		{"*", true},
		{"*.example.com", true},
		{"*-api.example.com", true},
		{"Example.COM", true},
		{"example.com.", true},
		{"a-b.c-d", true},
		{"", false},
		{"foo_bar.com", false},
		{"a..b", false},
		{".a", false},
		{"-a.com", false},
		{"a.*.com", false},
		{"a.123", false},
		{"10.0.0.1", false}, // an IP is not a host name; callers that accept IPs check for them
		{strings.Repeat("a", 64) + ".com", false},
		{strings.Repeat("abcdefgh.", 32) + "com", false},
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			if got := hostError(tc.host); (got == "") != tc.ok {
				t.Errorf("hostError(%q) = %q, want ok=%v", tc.host, got, tc.ok)
			}
		})
	}
}

func TestLabelKeyError(t *testing.T) {
	cases := []struct {
		key string
		ok  bool
	}{
		{"app", true},
		{"app.kubernetes.io/name", true},
		{"Version_1.2", true},
		{"example.com/a-b", true},
		{"", false},
		{"-app", false},
		{"app-", false},
		{"a b", false},
		{"a/b/c", false},
		{"Example.com/a", false},
		{"/a", false},
		{strings.Repeat("a", 64), false},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			if got := labelKeyError(tc.key); (got == "") != tc.ok {
				t.Errorf("labelKeyError(%q) = %q, want ok=%v", tc.key, got, tc.ok)
			}
		})
	}
}

func TestDNSNames(t *testing.T) {
	cases := []struct {
		name              string
		label, subdomain  bool
		labelIstioAllowed bool
	}{
		{"reviews", true, true, true},
		{"reviews-v1", true, true, true},
		{"a.b", false, true, false},
		{"Reviews", false, false, true},
		{"-a", false, false, false},
		{"a_b", false, false, false},
		{"", false, false, false},
		{strings.Repeat("a", 64), false, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := isDNSLabel(tc.name); got != tc.label {
				t.Errorf("isDNSLabel = %v, want %v", got, tc.label)
			}
			if got := isDNSSubdomain(tc.name); got != tc.subdomain {
				t.Errorf("isDNSSubdomain = %v, want %v", got, tc.subdomain)
			}
			if got := dnsLabel(tc.name, true); got != tc.labelIstioAllowed {
				t.Errorf("dnsLabel(upper) = %v, want %v", got, tc.labelIstioAllowed)
			}
		})
	}
}

func TestHostMatchingAndSubsets(t *testing.T) {
	cases := []struct {
		a, b            string
		matches, subset bool
	}{
		{"a.com", "a.com", true, true},
		{"a.com", "b.com", false, false},
		{"a.foo.com", "*.foo.com", true, true},
		{"*.foo.com", "a.foo.com", true, false},
		{"*.a.foo.com", "*.foo.com", true, true},
		{"*.foo.com", "*.a.foo.com", true, false},
		{"a.com", "*", true, true},
		{"*", "a.com", true, false},
		{"foo.com", "*.foo.com", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.a+" "+tc.b, func(t *testing.T) {
			if got := hostMatches(tc.a, tc.b); got != tc.matches {
				t.Errorf("hostMatches = %v, want %v", got, tc.matches)
			}
			if got := hostSubsetOf(tc.a, tc.b); got != tc.subset {
				t.Errorf("hostSubsetOf = %v, want %v", got, tc.subset)
			}
		})
	}
}

func TestHeaderValueError(t *testing.T) {
	cases := []struct {
		value string
		ok    bool
	}{
		{"plain", true},
		{"", true},
		{"%HOSTNAME%", true},
		{"100%%", true},
		{"prefix %REQ(x-a)% suffix", true},
		{"\tindented", true},
		{"abc%123", false},
		{"%START_TIME%%", false},
		{"a\nb", false},
		{"a\x7f", false},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			if got := headerValueError(tc.value); (got == "") != tc.ok {
				t.Errorf("headerValueError(%q) = %q, want ok=%v", tc.value, got, tc.ok)
			}
		})
	}
}

func TestParseInteger(t *testing.T) {
	cases := []struct {
		in     string
		signed bool
		bits   int
		ok     bool
	}{
		{"42", true, 32, true},
		{"1e3", true, 32, true},
		{"5.0", false, 32, true},
		{"2147483648", true, 32, false},
		{"4294967295", false, 32, true},
		{"4294967296", false, 32, false},
		{"1.5", true, 64, false},
		{"1e300", true, 64, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if _, _, err := parseInteger(tc.in, tc.signed, tc.bits); (err == nil) != tc.ok {
				t.Errorf("parseInteger(%s, %v, %d) error %v, want ok=%v", tc.in, tc.signed, tc.bits, err, tc.ok)
			}
		})
	}
}
