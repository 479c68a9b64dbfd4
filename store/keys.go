package store

import (
	"fmt"
	"strings"

	"github.com/navarch/navarch/api"
)

// Root is the prefix of every key navarch writes.
const Root = "/navarch/"

// Prefixes of the key spaces.
const (
	ConfigPrefix   = Root + "config/"
	RegistryPrefix = Root + "registry/"
)

// Space is a key space holding resources: user configuration, or one registry source.
type Space struct {
	prefix string
	source string
}

// ConfigSpace is the key space of user configuration.
var ConfigSpace = Space{prefix: ConfigPrefix, source: "config"}

// RegistrySpace returns the key space of one registry source ("consul", "vm", ...).
func RegistrySpace(source string) Space {
	return Space{prefix: RegistryPrefix + source + "/", source: source}
}

// Source names the space: "config" or the registry source.
func (s Space) Source() string { return s.source }

// Prefix returns the key prefix of the space.
func (s Space) Prefix() string { return s.prefix }

// KindPrefix returns the prefix of every resource of kind k in namespace ns (all
// namespaces when ns is empty).
func (s Space) KindPrefix(k *api.Kind, ns string) string {
	p := s.prefix + k.Group + "/" + k.Name + "/"
	if ns != "" {
		p += ns + "/"
	}
	return p
}

// Key returns the etcd key of a resource.
func (s Space) Key(k api.Key) string {
	return s.KindPrefix(k.Kind, k.Namespace) + k.Name
}

// ParseKey splits an etcd key written by this package into its space and resource key.
func ParseKey(key string) (Space, api.Key, error) {
	var space Space
	rest, ok := strings.CutPrefix(key, ConfigPrefix)
	if ok {
		space = ConfigSpace
	} else if rest, ok = strings.CutPrefix(key, RegistryPrefix); ok {
		source, r, found := strings.Cut(rest, "/")
		if !found {
			return Space{}, api.Key{}, fmt.Errorf("malformed registry key %q", key)
		}
		space, rest = RegistrySpace(source), r
	} else {
		return Space{}, api.Key{}, fmt.Errorf("key %q is not a resource key", key)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return Space{}, api.Key{}, fmt.Errorf("malformed resource key %q", key)
	}
	kind, ok := kindByGroupName(parts[0], parts[1])
	if !ok {
		return Space{}, api.Key{}, fmt.Errorf("key %q: unknown kind %s/%s", key, parts[0], parts[1])
	}
	return space, api.Key{Kind: kind, Namespace: parts[2], Name: parts[3]}, nil
}

func kindByGroupName(group, name string) (*api.Kind, bool) {
	for _, k := range api.Kinds() {
		if k.Group == group && k.Name == name {
			return k, true
		}
	}
	return nil, false
}
