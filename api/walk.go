package api

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The walker turns a JSON tree (as encoding/json decodes it with UseNumber: objects,
// lists, strings, json.Number, booleans and nil) into a proto message through
// protoreflect, the way Istio's own decoder (github.com/golang/protobuf/jsonpb) reads
// it, but strictly:
//
//   - a field may be named by its JSON (camelCase) name or its proto name;
//   - unknown fields, wrong types and a oneof set twice are errors naming the path;
//   - enums are given by name only: Istio's CRDs declare them as strings, so the
//     API server refuses numbers (jsonpb alone would take them);
//   - durations are parsed with time.ParseDuration, as jsonpb does, so "1m" and
//     "1h30m" are accepted besides protojson's "60s";
//   - null leaves a field unset, except where google.protobuf.Value means null.
//
// Numbers must be JSON numbers: a quoted number is a string, as Kubernetes'
// schema validation of Istio's CRDs has it.

// walker decodes into messages and records every problem it meets.
type walker struct {
	p *problems
}

// decodeSpec fills m from the JSON tree v found at path, recording problems in p.
func decodeSpec(path string, v any, m protoreflect.Message, p *problems) {
	walker{p: p}.message(path, v, m)
}

func (w walker) message(path string, v any, m protoreflect.Message) {
	md := m.Descriptor()
	if wellKnown(md.FullName()) {
		w.wellKnown(path, v, m)
		return
	}
	if v == nil {
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		w.p.add(path, "must be an object, got %s", describe(v))
		return
	}
	fields := md.Fields()
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.Name]string{}
	for _, k := range sortedKeys(obj) {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd == nil {
			if !removedField(md, k) {
				w.p.add(field(path, k), "unknown field %q%s", k, suggest(k, fields))
			}
			continue
		}
		fpath := field(path, fd.JSONName())
		if prev, dup := seen[fd.Number()]; dup {
			w.p.add(fpath, "set twice, as %q and as %q", prev, k)
			continue
		}
		seen[fd.Number()] = k
		val := obj[k]
		if val == nil && !nullable(fd) {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, set := oneofs[od.Name()]; set {
				w.p.add(fpath, "only one of %s may be set, and %q is set already", oneofNames(od), other)
				continue
			}
			oneofs[od.Name()] = fd.JSONName()
		}
		w.field(fpath, val, m, fd)
		if reason, ok := presentRules[fd.FullName()]; ok && !present(m, fd) {
			w.p.add(fpath, "%s", reason)
		}
	}
}

// presentRules are constraints Istio's CRDs put on a field that is given, which
// its proto cannot tell from a field left out (the zero value): the API server
// refuses `issuer: ""`, `portLevelMtls: {}` and `targetPort: 0`; istiod a mesh
// config's `trustDomain: ""`.
var presentRules = map[protoreflect.FullName]string{
	"istio.security.v1beta1.JWTRule.issuer":                           "must not be empty (leave it out instead)",
	"istio.security.v1beta1.JWTRule.jwks_uri":                         "must not be empty (leave it out instead)",
	"istio.security.v1beta1.PeerAuthentication.port_level_mtls":       "must set at least one port (leave it out instead)",
	"istio.networking.v1alpha3.ServicePort.target_port":               "must be 1-65535, got 0 (leave it out instead)",
	"istio.networking.v1alpha3.ServerTLSSettings.credential_names":    "must not be empty (leave it out instead)",
	"istio.networking.v1alpha3.ServerTLSSettings.tls_certificates":    "must not be empty (leave it out instead)",
	"istio.networking.v1alpha3.EnvoyFilter.WaypointMatch.port_number": "must be 1-65535, got 0 (leave it out instead)",
	// The mesh config's, which istiod merges onto its defaults: a field given
	// replaces the default, and an empty trust domain is refused.
	"istio.mesh.v1alpha1.MeshConfig.trust_domain":       "must not be empty (leave it out for the CA's)",
	"istio.mesh.v1alpha1.ProxyConfig.discovery_address": "must not be empty (leave it out for Istio's default)",
	"istio.mesh.v1alpha1.MeshConfig.proxy_listen_port":  "must be 1-65535, got 0 (leave it out for Istio's 15001)",
}

// present reports whether m holds a value other than the zero value in fd.
func present(m protoreflect.Message, fd protoreflect.FieldDescriptor) bool {
	switch {
	case fd.IsMap():
		return m.Get(fd).Map().Len() > 0
	case fd.IsList():
		return m.Get(fd).List().Len() > 0
	default:
		return m.Has(fd)
	}
}

// field decodes v into the field fd of m.
func (w walker) field(path string, v any, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	switch {
	case fd.IsList():
		w.list(path, v, m, fd)
	case fd.IsMap():
		w.mapField(path, v, m, fd)
	case fd.Message() != nil:
		w.message(path, v, m.Mutable(fd).Message())
	default:
		if pv, ok := w.scalar(path, v, fd); ok {
			m.Set(fd, pv)
		}
	}
}

func (w walker) list(path string, v any, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	arr, ok := v.([]any)
	if !ok {
		w.p.add(path, "must be a list, got %s", describe(v))
		return
	}
	l := m.Mutable(fd).List()
	for i, e := range arr {
		ep := index(path, i)
		if e == nil && !nullable(fd) {
			w.p.add(ep, "must not be null")
			continue
		}
		if fd.Message() != nil {
			el := l.NewElement()
			w.message(ep, e, el.Message())
			l.Append(el)
			continue
		}
		if pv, ok := w.scalar(ep, e, fd); ok {
			l.Append(pv)
		}
	}
}

func (w walker) mapField(path string, v any, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	obj, ok := v.(map[string]any)
	if !ok {
		w.p.add(path, "must be an object, got %s", describe(v))
		return
	}
	mp := m.Mutable(fd).Map()
	kd, vd := fd.MapKey(), fd.MapValue()
	for _, k := range sortedKeys(obj) {
		kp := mapKey(path, k)
		mk, ok := w.mapKeyValue(kp, k, kd)
		if !ok {
			continue
		}
		val := obj[k]
		if val == nil && !nullable(vd) {
			w.p.add(kp, "must not be null")
			continue
		}
		if vd.Message() != nil {
			mv := mp.NewValue()
			w.message(kp, val, mv.Message())
			mp.Set(mk, mv)
			continue
		}
		if pv, ok := w.scalar(kp, val, vd); ok {
			mp.Set(mk, pv)
		}
	}
}

// mapKeyValue parses a JSON object key as the key type of a proto map.
func (w walker) mapKeyValue(path, k string, kd protoreflect.FieldDescriptor) (protoreflect.MapKey, bool) {
	var v protoreflect.Value
	var err error
	switch kd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(k).MapKey(), true
	case protoreflect.BoolKind:
		var b bool
		b, err = strconv.ParseBool(k)
		v = protoreflect.ValueOfBool(b)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		var n int64
		n, err = strconv.ParseInt(k, 10, 32)
		v = protoreflect.ValueOfInt32(int32(n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		var n int64
		n, err = strconv.ParseInt(k, 10, 64)
		v = protoreflect.ValueOfInt64(n)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		var n uint64
		n, err = strconv.ParseUint(k, 10, 32)
		v = protoreflect.ValueOfUint32(uint32(n))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		var n uint64
		n, err = strconv.ParseUint(k, 10, 64)
		v = protoreflect.ValueOfUint64(n)
	default:
		err = fmt.Errorf("unsupported key kind %s", kd.Kind())
	}
	if err != nil {
		w.p.add(path, "key %q is not a valid %s", k, kindName(kd.Kind()))
		return protoreflect.MapKey{}, false
	}
	return v.MapKey(), true
}

// scalar converts a JSON value to the scalar (or enum) type of fd.
func (w walker) scalar(path string, v any, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if b, ok := v.(bool); ok {
			return protoreflect.ValueOfBool(b), true
		}
		w.p.add(path, "must be true or false, got %s", describe(v))
	case protoreflect.StringKind:
		if s, ok := v.(string); ok {
			return protoreflect.ValueOfString(s), true
		}
		w.p.add(path, "must be a string, got %s", describe(v))
	case protoreflect.BytesKind:
		return w.bytes(path, v)
	case protoreflect.EnumKind:
		return w.enum(path, v, fd.Enum())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return w.float(path, v, fd.Kind())
	default:
		return w.integer(path, v, fd.Kind())
	}
	return protoreflect.Value{}, false
}

func (w walker) bytes(path string, v any) (protoreflect.Value, bool) {
	s, ok := v.(string)
	if !ok {
		w.p.add(path, "must be a base64 string, got %s", describe(v))
		return protoreflect.Value{}, false
	}
	// As the CRDs' format byte has it: standard base64, padded, not empty.
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && s != "" {
		return protoreflect.ValueOfBytes(b), true
	}
	w.p.add(path, "must be base64 (standard, padded, not empty), got %s", describe(v))
	return protoreflect.Value{}, false
}

func (w walker) enum(path string, v any, ed protoreflect.EnumDescriptor) (protoreflect.Value, bool) {
	switch x := v.(type) {
	case nil:
		return protoreflect.ValueOfEnum(0), true // google.protobuf.NullValue
	case string:
		if ev := ed.Values().ByName(protoreflect.Name(x)); ev != nil {
			return protoreflect.ValueOfEnum(ev.Number()), true
		}
		w.p.add(path, "unknown value %q, must be one of %s", x, enumNames(ed))
	default:
		w.p.add(path, "must be one of %s, got %s", enumNames(ed), describe(v))
	}
	return protoreflect.Value{}, false
}

func (w walker) float(path string, v any, kind protoreflect.Kind) (protoreflect.Value, bool) {
	n, ok := v.(json.Number)
	if !ok {
		w.p.add(path, "must be a number, got %s", describe(v))
		return protoreflect.Value{}, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		w.p.add(path, "number %s is out of range", n)
		return protoreflect.Value{}, false
	}
	if kind == protoreflect.FloatKind {
		if math.Abs(f) > math.MaxFloat32 {
			w.p.add(path, "number %s is out of range for a float", n)
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfFloat32(float32(f)), true
	}
	return protoreflect.ValueOfFloat64(f), true
}

func (w walker) integer(path string, v any, kind protoreflect.Kind) (protoreflect.Value, bool) {
	n, ok := v.(json.Number)
	if !ok {
		w.p.add(path, "must be an integer, got %s", describe(v))
		return protoreflect.Value{}, false
	}
	signed, bits := intKind(kind)
	if !signed && strings.HasPrefix(string(n), "-") {
		w.p.add(path, "must not be negative, got %s", n)
		return protoreflect.Value{}, false
	}
	i, u, err := parseInteger(string(n), signed, bits)
	if err != nil {
		w.p.add(path, "%s, got %s", err, n)
		return protoreflect.Value{}, false
	}
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(i)), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(i), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(u)), true
	default:
		return protoreflect.ValueOfUint64(u), true
	}
}

// intKind reports whether kind is signed and how many bits it has.
func intKind(kind protoreflect.Kind) (signed bool, bits int) {
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return true, 32
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return true, 64
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return false, 32
	default:
		return false, 64
	}
}

// parseInteger parses a JSON number that must hold an integer of the given size.
// Integral numbers in float notation ("1e3", "5.0") are accepted, as protojson does.
func parseInteger(s string, signed bool, bits int) (int64, uint64, error) {
	if signed {
		if i, err := strconv.ParseInt(s, 10, bits); err == nil {
			return i, 0, nil
		}
	} else if u, err := strconv.ParseUint(s, 10, bits); err == nil {
		return 0, u, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) {
		return 0, 0, fmt.Errorf("must be an integer")
	}
	if signed {
		lim := math.Ldexp(1, bits-1)
		if f < -lim || f >= lim {
			return 0, 0, fmt.Errorf("out of range for a %d-bit integer", bits)
		}
		return int64(f), 0, nil
	}
	if f >= math.Ldexp(1, bits) {
		return 0, 0, fmt.Errorf("out of range for an unsigned %d-bit integer", bits)
	}
	return 0, uint64(f), nil
}

// removedField reports whether k names a field that Istio's API once had and has
// since removed, which the proto keeps as a reserved name (HTTPRoute's
// websocket_upgrade, say). Old configs still carry them and Istio's own loader
// ignores them, so they are accepted and dropped.
func removedField(md protoreflect.MessageDescriptor, k string) bool {
	reserved := md.ReservedNames()
	return reserved.Has(protoreflect.Name(k)) || reserved.Has(protoreflect.Name(snakeCase(k)))
}

// snakeCase turns a JSON field name into a proto field name: "retryOn" -> "retry_on".
func snakeCase(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			b.WriteByte('_')
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// nullable reports whether a JSON null is a value of fd rather than "unset".
func nullable(fd protoreflect.FieldDescriptor) bool {
	if md := fd.Message(); md != nil {
		return md.FullName() == "google.protobuf.Value"
	}
	if ed := fd.Enum(); ed != nil {
		return ed.FullName() == "google.protobuf.NullValue"
	}
	return false
}

// sortedKeys returns the keys of m in order, so that errors come out in a stable order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// describe names the JSON type of v, with the value where it is short, for errors.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case json.Number:
		return "number " + string(x)
	case string:
		if len(x) > 64 {
			x = x[:61] + "..."
		}
		return "string " + strconv.Quote(x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func kindName(k protoreflect.Kind) string {
	switch k {
	case protoreflect.BoolKind:
		return "boolean"
	case protoreflect.StringKind:
		return "string"
	default:
		return "integer"
	}
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	vals := ed.Values()
	names := make([]string, vals.Len())
	for i := range names {
		names[i] = string(vals.Get(i).Name())
	}
	return strings.Join(names, ", ")
}

func oneofNames(od protoreflect.OneofDescriptor) string {
	fs := od.Fields()
	names := make([]string, fs.Len())
	for i := range names {
		names[i] = fs.Get(i).JSONName()
	}
	return strings.Join(names, ", ")
}

// suggest returns `; did you mean "x"?` when a field of fields is a near miss for k.
func suggest(k string, fields protoreflect.FieldDescriptors) string {
	best, bestDist := "", 3
	lk := strings.ToLower(k)
	for i := 0; i < fields.Len(); i++ {
		name := fields.Get(i).JSONName()
		if d := editDistance(lk, strings.ToLower(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
