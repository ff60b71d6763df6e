package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is the release this binary is. scripts/image sets it at link
// time (-X main.version=…), the same value as the image's
// org.opencontainers.image.version label, so a running pod can be traced
// back to its image.
var version = "devel"

// versionCmd prints the release, the commit and the Go toolchain.
func versionCmd(stdout io.Writer) int {
	rev, modified, goVersion := "unknown", "", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = " (modified)"
			}
		}
	}
	fmt.Fprintf(stdout, "pushback %s\ncommit %s%s\n%s\n", version, rev, modified, goVersion)
	return 0
}
