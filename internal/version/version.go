// Package version says which build of navarch is running.
package version

import "runtime/debug"

// stamp is set at build time with -ldflags "-X github.com/navarch/navarch/internal/version.stamp=...".
var stamp = ""

// String returns the build's version: the stamp, else "dev-" and the first 12
// characters of the commit it was built from, else "dev".
func String() string {
	if stamp != "" {
		return stamp
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
