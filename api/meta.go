package api

import (
	"encoding/json"
	"strconv"
	"strings"
)

// maxAnnotationsSize is Kubernetes' limit on the total size of a resource's annotations.
const maxAnnotationsSize = 256 * 1024

// parseMeta reads a document's metadata. Fields Kubernetes sets (uid,
// creationTimestamp, managedFields, ...) are accepted and dropped, except
// resourceVersion, which drives compare-and-swap updates. When strict, unknown
// fields and malformed labels and annotations are errors.
func parseMeta(p *problems, v any, strict bool) ObjectMeta {
	var m ObjectMeta
	if v == nil {
		return m
	}
	obj, ok := v.(map[string]any)
	if !ok {
		p.add("metadata", "must be an object, got %s", describe(v))
		return m
	}
	for _, k := range sortedKeys(obj) {
		path := field("metadata", k)
		val := obj[k]
		switch k {
		case "name":
			m.Name = metaString(p, path, val)
		case "namespace":
			m.Namespace = metaString(p, path, val)
		case "resourceVersion":
			if n, isNumber := val.(json.Number); isNumber {
				m.ResourceVersion = string(n)
			} else {
				m.ResourceVersion = metaString(p, path, val)
			}
		case "labels":
			m.Labels = metaMap(p, path, val, strict)
		case "annotations":
			m.Annotations = metaMap(p, path, val, strict)
		case "generateName", "selfLink", "uid", "generation", "creationTimestamp", "deletionTimestamp",
			"deletionGracePeriodSeconds", "ownerReferences", "finalizers", "managedFields", "clusterName":
			// Set by Kubernetes; meaningless here, and harmless.
		default:
			if strict {
				p.add(path, "unknown field %q", k)
			}
		}
	}
	return m
}

func metaString(p *problems, path string, v any) string {
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.add(path, "must be a string, got %s", describe(v))
	}
	return s
}

func metaMap(p *problems, path string, v any, strict bool) map[string]string {
	if v == nil {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if strict {
			p.add(path, "must be an object of strings, got %s", describe(v))
		}
		return nil
	}
	m := make(map[string]string, len(obj))
	for _, k := range sortedKeys(obj) {
		s, ok := obj[k].(string)
		if !ok && strict {
			p.add(mapKey(path, k), "must be a string, got %s", describe(obj[k]))
		}
		m[k] = s
	}
	return m
}

// validateMeta checks the metadata of a resource of kind k: names always, labels and
// annotations when strict.
func validateMeta(p *problems, k *Kind, m *ObjectMeta, strict bool) {
	switch {
	case m.Name == "":
		p.add("metadata.name", "required")
	case !isDNSSubdomain(m.Name):
		p.add("metadata.name", "%q must be a DNS-1123 subdomain: lower-case alphanumerics, '-' and '.', "+
			"starting and ending with an alphanumeric, at most %d characters", m.Name, maxSubdomainLength)
	case k == Gateway && !isDNSLabel(m.Name):
		p.add("metadata.name", "%q must be a DNS-1123 label (no dots) for a Gateway", m.Name)
	}
	if m.Namespace != "" && !isDNSLabel(m.Namespace) {
		p.add("metadata.namespace", "%q must be a DNS-1123 label: lower-case alphanumerics and '-', "+
			"starting and ending with an alphanumeric, at most %d characters", m.Namespace, maxLabelLength)
	}
	if m.ResourceVersion != "" {
		if _, err := strconv.ParseUint(m.ResourceVersion, 10, 64); err != nil {
			p.add("metadata.resourceVersion", "must be a revision number, got %q", m.ResourceVersion)
		}
	}
	if !strict {
		return
	}
	validateLabels(p, "metadata.labels", m.Labels)
	size := 0
	for _, key := range sortedKeys(m.Annotations) {
		size += len(key) + len(m.Annotations[key])
		if reason := labelKeyError(strings.ToLower(key)); reason != "" {
			p.add("metadata.annotations", "invalid annotation key %q: %s", key, reason)
		}
	}
	if size > maxAnnotationsSize {
		p.add("metadata.annotations", "must be at most %d bytes in total, got %d", maxAnnotationsSize, size)
	}
}
