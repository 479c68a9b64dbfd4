package xds

import (
	"slices"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

// TestHeaderOperationsAsIstiod: Envoy refuses to change pseudo-headers and Host, so
// a host (or :authority) to set or add becomes the request's authority, set's over
// add's, and neither is added or removed as a header; the rest keep their order of
// name, set before add.
func TestHeaderOperationsAsIstiod(t *testing.T) {
	ops := translateHeaders(&networking.Headers{
		Request: &networking.Headers_HeaderOperations{
			Set:    map[string]string{"x-b": "2", "Host": "set.example.com", "x-a": "1"},
			Add:    map[string]string{":authority": "add.example.com", "x-c": "3"},
			Remove: []string{"x-d", "host", ":path"},
		},
		Response: &networking.Headers_HeaderOperations{Set: map[string]string{"host": "ignored", "x-e": "5"}},
	})
	var req []string
	for _, o := range ops.reqAdd {
		req = append(req, o.Header.Key+"="+o.Header.Value+"/"+o.AppendAction.String())
	}
	want := []string{"x-a=1/OVERWRITE_IF_EXISTS_OR_ADD", "x-b=2/OVERWRITE_IF_EXISTS_OR_ADD", "x-c=3/APPEND_IF_EXISTS_OR_ADD"}
	if !slices.Equal(req, want) {
		t.Errorf("request headers %q, want %q", req, want)
	}
	if ops.authority != "set.example.com" {
		t.Errorf("authority %q, want set's", ops.authority)
	}
	if !slices.Equal(ops.reqRemove, []string{"x-d"}) || len(ops.respAdd) != 1 || ops.respAdd[0].Header.Key != "x-e" {
		t.Errorf("removed %v, response %v", ops.reqRemove, ops.respAdd)
	}
}
