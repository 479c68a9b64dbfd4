package consul

import (
	"maps"
	"strings"
	"testing"
)

func TestInstanceLabels(t *testing.T) {
	tests := []struct {
		name string
		tags []string
		meta map[string]string
		want map[string]string
	}{
		{"a version tag is the version label", []string{"v1"}, nil, map[string]string{"version": "v1"}},
		{"dotted and pre-release versions count", []string{"v2.1", "x"}, nil, map[string]string{"version": "v2.1", "x": "true"}},
		{"a pre-release version", []string{"v1.4.0-rc1"}, nil, map[string]string{"version": "v1.4.0-rc1"}},
		{"key=value tags are labels", []string{"track=canary", "team=payments"}, nil, map[string]string{"track": "canary", "team": "payments"}},
		{"bare tags are true", []string{"primary", "version1"}, nil, map[string]string{"primary": "true", "version1": "true"}},
		{"the first tag to set a key wins", []string{"v1", "v2", "version=v3"}, nil, map[string]string{"version": "v1"}},
		{"service meta wins over tags", []string{"v1"}, map[string]string{"version": "v9", "protocol": "grpc"},
			map[string]string{"version": "v9", "protocol": "grpc"}},
		{"invalid characters are replaced and ends trimmed", []string{"team=pay ments!", "-odd tag-"}, nil,
			map[string]string{"team": "pay-ments", "odd-tag": "true"}},
		{"an empty value stays empty", []string{"flag="}, nil, map[string]string{"flag": ""}},
		{"prefixed keys keep a valid prefix", []string{"Example.COM/tier=gold", "bad_prefix!/x=y"}, nil,
			map[string]string{"example.com/tier": "gold", "bad-prefix/x": "y"}},
		{"keys with nothing valid are dropped", []string{"!!!", "=", "/=x"}, map[string]string{"***": "x"}, map[string]string{}},
		{"a leading = is a bare tag", []string{"=v2"}, nil, map[string]string{"version": "v2"}},
		{"reserved keys cannot be set", []string{"consul.navarch.io/service=evil"}, map[string]string{"consul.navarch.io/datacenter": "x"},
			map[string]string{}},
		{"long values are cut to 63", []string{"k=" + strings.Repeat("a", 70)}, nil, map[string]string{"k": strings.Repeat("a", 63)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := instanceLabels(tt.tags, tt.meta)
			if !maps.Equal(got, tt.want) {
				t.Fatalf("instanceLabels(%q, %v) = %v, want %v", tt.tags, tt.meta, got, tt.want)
			}
		})
	}
}
