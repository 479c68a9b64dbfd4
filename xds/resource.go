package xds

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resource is one built xDS resource, marshalled once and shared by every stream that
// sends it. Version is a hash of its bytes, so equal content has an equal version on
// every node.
type Resource struct {
	Name    string
	Version string
	Body    *anypb.Any
}

// named is a generated resource: its name and its message, built now (msg) or, for
// resources several proxy classes share, on demand (lazy) and only by the first
// class of a push that needs it: key says what besides the snapshot the content
// depends on (the proxy's namespace, say), so classes with the same key share one
// built resource.
type named struct {
	name string
	msg  proto.Message
	key  string
	lazy func() proto.Message
	// patched is a resource an EnvoyFilter patched (envoyfilter.go): validated
	// with every message packed in it.
	patched bool
}

// shared is a resource that every class with the same key gets identically.
func shared(name, key string, build func() proto.Message) named {
	return named{name: name, key: key, lazy: build}
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// newResource marshals msg deterministically and versions it by content.
func newResource(typeURL, name string, msg proto.Message) (*Resource, error) {
	b, err := deterministic.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("marshalling %s %q: %w", shortType(typeURL), name, err)
	}
	return marshalled(typeURL, name, contentVersion(b), b), nil
}

// marshalled is the resource of a marshalled message b, whose version is version.
func marshalled(typeURL, name, version string, b []byte) *Resource {
	return &Resource{Name: name, Version: version, Body: &anypb.Any{TypeUrl: typeURL, Value: b}}
}

func contentVersion(b []byte) string {
	var sum [8]byte
	h := xxhash.Sum64(b)
	for i := range sum {
		sum[i] = byte(h >> (56 - 8*i))
	}
	return hex.EncodeToString(sum[:])
}

// TypeSet is every resource of one type that one proxy class gets.
type TypeSet struct {
	TypeURL string
	ByName  map[string]*Resource
}

// Names returns the names in the set, sorted.
func (t *TypeSet) Names() []string {
	names := make([]string, 0, len(t.ByName))
	for n := range t.ByName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// setVersion is the version of a SotW response: a hash of the names and versions of the
// resources it carries, so it too is equal on every node for equal content.
func setVersion(rs []*Resource) string {
	var h xxhash.Digest // on the stack: this runs for every type of every push
	h.Reset()
	for _, r := range rs {
		_, _ = h.WriteString(r.Name)
		_, _ = h.WriteString("\x00")
		_, _ = h.WriteString(r.Version)
		_, _ = h.WriteString("\x00")
	}
	var sum [8]byte
	var out [16]byte
	binary.BigEndian.PutUint64(sum[:], h.Sum64())
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// validateNested validates m, marshalled as b, and every message packed in an Any
// within it (the typed configs of filters, access logs, tracers, ...), which a
// message's own Validate does not look into. mustAny validates what it packs, and
// packs a message that fails as an Any of invalidAnyType whose value is the reason;
// such a mark's type URL is in the bytes of every message that holds it, however
// deep, so a resource is checked by its Validate and a search of its bytes, without
// unpacking anything but the rare resource whose bytes hold the mark's name.
func validateNested(m proto.Message, b []byte) error {
	if v, ok := m.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if !bytes.Contains(b, []byte(invalidAnyType)) {
		return nil
	}
	return invalidAnyIn(m.ProtoReflect())
}

// invalidAnyType is the type of the Any mustAny packs an invalid message as.
const invalidAnyType = "type.googleapis.com/navarch.invalid"

// invalidAnyIn returns the reason of the first invalid mark in msg, unpacking the
// Anys within it; nil if there is none (the bytes only looked as if).
func invalidAnyIn(msg protoreflect.Message) error {
	if a, ok := msg.Interface().(*anypb.Any); ok {
		if a.TypeUrl == invalidAnyType {
			return errors.New(string(a.Value))
		}
		packed, err := a.UnmarshalNew()
		if err != nil {
			return nil // a type this program does not link holds no mark of its own
		}
		return invalidAnyIn(packed.ProtoReflect())
	}
	var err error
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = invalidAnyIn(l.Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = invalidAnyIn(mv.Message())
					return err == nil
				})
			}
		default:
			err = invalidAnyIn(v.Message())
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", fd.Name(), err)
		}
		return err == nil
	})
	return err
}

// validateUnpacked validates m and, unpacking them, the messages of every Any
// within it: what validateNested establishes from mustAny's marks, checked the slow
// way, for resources with messages mustAny did not pack (an EnvoyFilter's; golden
// tests check every resource so).
func validateUnpacked(m proto.Message) error {
	if v, ok := m.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	var err error
	var walk func(protoreflect.Message)
	walk = func(msg protoreflect.Message) {
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			visit := func(inner protoreflect.Message) {
				if err != nil {
					return
				}
				a, ok := inner.Interface().(*anypb.Any)
				if !ok {
					walk(inner)
					return
				}
				if a.TypeUrl == invalidAnyType {
					err = fmt.Errorf("%s: %s", fd.FullName(), a.Value)
					return
				}
				packed, uerr := a.UnmarshalNew()
				if uerr != nil {
					err = fmt.Errorf("%s: %s: %w", fd.FullName(), a.TypeUrl, uerr)
					return
				}
				if verr := validateUnpacked(packed); verr != nil {
					err = fmt.Errorf("%s (%s): %w", fd.FullName(), a.TypeUrl, verr)
				}
			}
			switch {
			case fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					visit(v.List().Get(i).Message())
				}
			case fd.IsMap():
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { visit(mv.Message()); return err == nil })
				}
			default:
				visit(v.Message())
			}
			return err == nil
		})
	}
	walk(m.ProtoReflect())
	return err
}
