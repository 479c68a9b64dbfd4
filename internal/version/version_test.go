package version

import (
	"strings"
	"testing"
)

// TestStringPrefersTheStamp: a build stamped with -ldflags says its stamp; one
// without says it is a development build.
func TestStringPrefersTheStamp(t *testing.T) {
	defer func(s string) { stamp = s }(stamp)
	stamp = ""
	if v := String(); !strings.HasPrefix(v, "dev") {
		t.Errorf("unstamped build: %q, want dev or dev-<commit>", v)
	}
	stamp = "v1.2.3"
	if v := String(); v != "v1.2.3" {
		t.Errorf("stamped build: %q, want v1.2.3", v)
	}
}
