package consul

import (
	"regexp"
	"strings"
)

// Labels the adapter sets on every WorkloadEntry; the ServiceEntries select on them.
// Tags and metadata cannot set them.
const (
	labelPrefix     = "consul.navarch.io/"
	LabelService    = labelPrefix + "service"
	LabelDatacenter = labelPrefix + "datacenter"
)

// Annotations that say where a WorkloadEntry came from.
const (
	AnnotationNode      = labelPrefix + "node"
	AnnotationServiceID = labelPrefix + "service-id"
)

// versionTag matches a bare tag that names a version: v1, v2.1, v1.4.0-rc1.
var versionTag = regexp.MustCompile(`^v[0-9]+(\.[0-9]+)*(-[0-9A-Za-z.]+)?$`)

// instanceLabels maps an instance's tags and service metadata to labels, so that
// DestinationRule subsets can select Consul instances:
//
//   - a tag "key=value" is the label key: value;
//   - a bare tag that looks like a version ("v1", "v2.1") is version: <tag>;
//   - any other bare tag is <tag>: "true";
//   - each ServiceMeta key/value is a label, and wins over a tag of the same key;
//   - among tags the first one to set a key wins.
//
// Keys and values are made valid label syntax (labelKey, labelValue); a key that
// cannot be is dropped, and keys under consul.navarch.io/ are reserved.
func instanceLabels(tags []string, meta map[string]string) map[string]string {
	labels := map[string]string{}
	set := func(k, v string, override bool) {
		k = labelKey(k)
		if k == "" || strings.HasPrefix(k, labelPrefix) {
			return
		}
		if _, exists := labels[k]; exists && !override {
			return
		}
		labels[k] = labelValue(v)
	}
	for _, tag := range tags {
		if k, v, ok := strings.Cut(tag, "="); ok && k != "" {
			set(k, v, false)
			continue
		}
		tag = strings.TrimPrefix(tag, "=")
		if versionTag.MatchString(tag) {
			set("version", tag, false)
			continue
		}
		set(tag, "true", false)
	}
	for _, k := range sortedKeys(meta) {
		set(k, meta[k], true)
	}
	return labels
}
