package api

import (
	"encoding/json"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Well-known types have a JSON form of their own rather than an object of fields.

func wellKnown(name protoreflect.FullName) bool {
	if !strings.HasPrefix(string(name), "google.protobuf.") {
		return false
	}
	switch name.Name() {
	case "Duration", "Timestamp", "Struct", "Value", "ListValue", "Empty", "FieldMask", "Any",
		"DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value",
		"BoolValue", "StringValue", "BytesValue":
		return true
	}
	return false
}

func (w walker) wellKnown(path string, v any, m protoreflect.Message) {
	md := m.Descriptor()
	fields := md.Fields()
	if v == nil {
		if md.Name() == "Value" {
			m.Set(fields.ByName("null_value"), protoreflect.ValueOfEnum(0))
		}
		return
	}
	switch md.Name() {
	case "Duration":
		w.duration(path, v, m)
	case "Timestamp":
		w.timestamp(path, v, m)
	case "Struct":
		w.mapField(path, v, m, fields.ByName("fields"))
	case "ListValue":
		w.list(path, v, m, fields.ByName("values"))
	case "Value":
		w.value(path, v, m)
	case "Empty":
		if obj, ok := v.(map[string]any); !ok || len(obj) > 0 {
			w.p.add(path, "must be an empty object, got %s", describe(v))
		}
	case "FieldMask":
		w.fieldMask(path, v, m)
	case "Any":
		w.any(path, v, m)
	default: // the wrappers: the JSON form is the wrapped value itself
		fd := fields.ByName("value")
		if pv, ok := w.scalar(path, v, fd); ok {
			m.Set(fd, pv)
		}
	}
}

// duration parses durations the way Istio's jsonpb does, with time.ParseDuration:
// "1m", "1h30m", "8ms" and protojson's "300s" or "1.5s" are all accepted.
func (w walker) duration(path string, v any, m protoreflect.Message) {
	s, ok := v.(string)
	if !ok {
		w.p.add(path, "must be a duration string such as \"5s\" or \"1m\", got %s", describe(v))
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		w.p.add(path, "invalid duration %q, want a number with a unit such as \"300ms\", \"5s\" or \"1m\"", s)
		return
	}
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("seconds"), protoreflect.ValueOfInt64(int64(d/time.Second)))
	m.Set(fields.ByName("nanos"), protoreflect.ValueOfInt32(int32(d%time.Second)))
}

func (w walker) timestamp(path string, v any, m protoreflect.Message) {
	s, ok := v.(string)
	if !ok {
		w.p.add(path, "must be an RFC 3339 timestamp string, got %s", describe(v))
		return
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		w.p.add(path, "invalid timestamp %q, want RFC 3339 such as \"2024-01-02T15:04:05Z\"", s)
		return
	}
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("seconds"), protoreflect.ValueOfInt64(t.Unix()))
	m.Set(fields.ByName("nanos"), protoreflect.ValueOfInt32(int32(t.Nanosecond())))
}

// value decodes any JSON into a google.protobuf.Value.
func (w walker) value(path string, v any, m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	switch x := v.(type) {
	case bool:
		m.Set(fields.ByName("bool_value"), protoreflect.ValueOfBool(x))
	case string:
		m.Set(fields.ByName("string_value"), protoreflect.ValueOfString(x))
	case json.Number:
		if pv, ok := w.float(path, x, protoreflect.DoubleKind); ok {
			m.Set(fields.ByName("number_value"), pv)
		}
	case map[string]any:
		w.message(path, x, m.Mutable(fields.ByName("struct_value")).Message())
	case []any:
		w.message(path, x, m.Mutable(fields.ByName("list_value")).Message())
	default:
		w.p.add(path, "unsupported JSON value %s", describe(v))
	}
}

// fieldMask decodes "a.b,cD" into the paths ["a.b", "c_d"].
func (w walker) fieldMask(path string, v any, m protoreflect.Message) {
	s, ok := v.(string)
	if !ok {
		w.p.add(path, "must be a comma-separated string of field paths, got %s", describe(v))
		return
	}
	l := m.Mutable(m.Descriptor().Fields().ByName("paths")).List()
	for _, p := range strings.Split(s, ",") {
		if p == "" {
			continue
		}
		l.Append(protoreflect.ValueOfString(snakeCase(p)))
	}
}

// any decodes {"@type": "type.googleapis.com/x.Y", ...fields} (or "value" for a
// well-known type) into a google.protobuf.Any. The type must be linked into the binary.
func (w walker) any(path string, v any, m protoreflect.Message) {
	obj, ok := v.(map[string]any)
	if !ok {
		w.p.add(path, "must be an object with \"@type\", got %s", describe(v))
		return
	}
	typeURL, ok := obj["@type"].(string)
	if !ok || typeURL == "" {
		w.p.add(field(path, "@type"), "required: the type URL of the message")
		return
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		w.p.add(field(path, "@type"), "unknown message type %q", typeURL)
		return
	}
	inner := mt.New()
	rest := make(map[string]any, len(obj))
	for k, val := range obj {
		if k != "@type" {
			rest[k] = val
		}
	}
	before := w.p.count()
	if wellKnown(inner.Descriptor().FullName()) {
		for k := range rest {
			if k != "value" {
				w.p.add(field(path, k), "unknown field %q; an Any of a well-known type has only \"value\"", k)
			}
		}
		w.wellKnown(field(path, "value"), rest["value"], inner)
	} else {
		w.message(path, rest, inner)
	}
	if w.p.count() > before {
		return
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner.Interface())
	if err != nil {
		w.p.add(path, "encoding %s: %v", typeURL, err)
		return
	}
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("type_url"), protoreflect.ValueOfString(typeURL))
	m.Set(fields.ByName("value"), protoreflect.ValueOfBytes(b))
}
