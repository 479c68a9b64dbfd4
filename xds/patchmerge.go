package xds

import (
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// mergeMessage merges src into dst as Istio merges an EnvoyFilter's value (its
// pkg/proto/merge): scalars and bytes given in src replace dst's; messages merge
// field by field, but a Duration is replaced whole; list elements of src are
// appended (with replaceLists, they replace dst's list); map entries of src replace
// dst's of the same key. An Any merges as a message: its type and bytes replace
// dst's.
func mergeMessage(dst, src protoreflect.Message, replaceLists bool) {
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := dst.Mutable(fd).List()
			if replaceLists {
				l.Truncate(0)
			}
			sl := v.List()
			for i := 0; i < sl.Len(); i++ {
				l.Append(copyValue(fd, sl.Get(i), l.NewElement))
			}
		case fd.IsMap():
			m := dst.Mutable(fd).Map()
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				m.Set(k, copyValue(fd.MapValue(), mv, m.NewValue))
				return true
			})
		case fd.Message() != nil && fd.Message().FullName() == durationName:
			dst.Set(fd, copyValue(fd, v, func() protoreflect.Value { return dst.NewField(fd) }))
		case fd.Message() != nil:
			mergeMessage(dst.Mutable(fd).Message(), v.Message(), replaceLists)
		default:
			dst.Set(fd, copyValue(fd, v, nil))
		}
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(append(dst.GetUnknown(), u...))
	}
}

var durationName = (&durationpb.Duration{}).ProtoReflect().Descriptor().FullName()

// copyValue returns a copy of v, a value of field fd (or of a map's values): a new
// message from newValue with v merged into it, a copy of bytes, or v itself.
func copyValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, newValue func() protoreflect.Value) protoreflect.Value {
	switch {
	case fd.Message() != nil:
		nv := newValue()
		mergeMessage(nv.Message(), v.Message(), false)
		return nv
	case fd.Kind() == protoreflect.BytesKind:
		return protoreflect.ValueOfBytes(append([]byte{}, v.Bytes()...))
	}
	return v
}
