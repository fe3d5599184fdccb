package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release this binary is. A release build sets it:
//
//	go build -ldflags "-X main.version=v1.2.0" ./cmd/sandi
//
// Left empty, the module version the Go toolchain recorded is shown: a
// tag for `go install sandi.dev/cmd/sandi@v1.2.0`; for a build in a git
// checkout, a pseudo-version made of the last tag (v0.0.0 when none), the
// commit's time and its hash, "+dirty" when the tree had changes; "(devel)"
// when no version control information was available.
var version string

// versionText is what `sandi --version` prints: the version, then the
// commit, its time and whether the tree was modified when the toolchain
// recorded them, the Go version and the platform.
func versionText() string {
	v, rev, when, dirty := version, "", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	text := "sandi " + v
	if rev != "" {
		text += fmt.Sprintf("\ncommit %.12s %s", rev, when)
		if dirty {
			text += " (with uncommitted changes)"
		}
	}
	return text + fmt.Sprintf("\n%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintln(w, versionText())
	return err
}
