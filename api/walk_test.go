package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

func parseJSON(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return v
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestWalkDecodesWellKnownTypes(t *testing.T) {
	st, err := structpb.NewStruct(map[string]any{"a": 1.0, "b": []any{true, nil, "x"}, "c": map[string]any{"d": nil}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		json  string
		empty proto.Message
		want  proto.Message
	}{
		{"a Struct", `{"a": 1, "b": [true, null, "x"], "c": {"d": null}}`, &structpb.Struct{}, st},
		{"a ListValue", `[1, "a"]`, &structpb.ListValue{}, &structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewStringValue("a")}}},
		{"a null Value", `null`, &structpb.Value{}, structpb.NewNullValue()},
		{"a Timestamp", `"2024-01-02T15:04:05.5Z"`, &timestamppb.Timestamp{}, timestamppb.New(time.Date(2024, 1, 2, 15, 4, 5, 5e8, time.UTC))},
		{"a Duration in minutes", `"1m30s"`, &durationpb.Duration{}, durationpb.New(90 * time.Second)},
		{"a negative fractional Duration", `"-1.5s"`, &durationpb.Duration{}, durationpb.New(-1500 * time.Millisecond)},
		{"a FieldMask", `"a.bC,d"`, &fieldmaskpb.FieldMask{}, &fieldmaskpb.FieldMask{Paths: []string{"a.b_c", "d"}}},
		{"an Empty", `{}`, &emptypb.Empty{}, &emptypb.Empty{}},
		{"a DoubleValue", `1.5`, &wrapperspb.DoubleValue{}, wrapperspb.Double(1.5)},
		{"a UInt32Value", `7`, &wrapperspb.UInt32Value{}, wrapperspb.UInt32(7)},
		{"an Any of a well-known type", `{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1m"}`,
			&anypb.Any{}, mustAny(t, durationpb.New(time.Minute))},
		{"an Any of an Istio message", `{"@type": "type.googleapis.com/istio.networking.v1alpha3.Destination", "host": "a", "port": {"number": 80}}`,
			&anypb.Any{}, mustAny(t, &networking.Destination{Host: "a", Port: &networking.PortSelector{Number: 80}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &problems{}
			decodeSpec("spec", parseJSON(t, tc.json), tc.empty.ProtoReflect(), p)
			if p.count() > 0 {
				t.Fatalf("problems: %v", p.join(""))
			}
			if !proto.Equal(tc.empty, tc.want) {
				t.Errorf("got %v, want %v", tc.empty, tc.want)
			}
		})
	}
}

func TestWalkRejectsMalformedWellKnownTypes(t *testing.T) {
	cases := []struct {
		name, json   string
		empty        proto.Message
		field, cause string
	}{
		{"an Any of an unknown type", `{"@type": "type.googleapis.com/no.Such"}`, &anypb.Any{}, "spec.@type", `unknown message type "type.googleapis.com/no.Such"`},
		{"an Any without a type", `{"value": 1}`, &anypb.Any{}, "spec.@type", "required"},
		{"an Any with an unknown field", `{"@type": "type.googleapis.com/istio.networking.v1alpha3.Destination", "hots": "a"}`,
			&anypb.Any{}, "spec.hots", `unknown field "hots"`},
		{"a non-empty Empty", `{"a": 1}`, &emptypb.Empty{}, "spec", "must be an empty object"},
		{"a malformed Timestamp", `"yesterday"`, &timestamppb.Timestamp{}, "spec", `invalid timestamp "yesterday"`},
		{"a Struct that is a list", `[1]`, &structpb.Struct{}, "spec", "must be an object, got a list"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &problems{}
			decodeSpec("spec", parseJSON(t, tc.json), tc.empty.ProtoReflect(), p)
			wantProblem(t, p.join("x"), tc.field, tc.cause)
		})
	}
}

func TestWalkDecodesBytesAsBase64(t *testing.T) {
	p := &problems{}
	var body networking.HTTPBody
	decodeSpec("spec", parseJSON(t, `{"bytes": "aGVsbG8="}`), body.ProtoReflect(), p)
	if p.count() > 0 || string(body.GetBytes()) != "hello" {
		t.Errorf("got %q, problems %v", body.GetBytes(), p.join(""))
	}
	decodeSpec("spec", parseJSON(t, `{"bytes": "%%%"}`), (&networking.HTTPBody{}).ProtoReflect(), p)
	wantProblem(t, p.join("x"), "spec.bytes", "must be base64")
}

func TestWalkAcceptsRemovedFields(t *testing.T) {
	mustDecode(t, specDoc(VirtualService, `{hosts: [a], http: [{websocketUpgrade: true, websocket_upgrade: true, route: [{destination: {host: a}}]}]}`))
}
