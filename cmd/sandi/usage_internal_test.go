package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestUsageMatchesCommands: the usage text names every command the binary
// runs, and every command it names runs.
func TestUsageMatchesCommands(t *testing.T) {
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)(?: |$)`).FindAllStringSubmatch(usage, -1) {
		named[m[1]] = true
	}
	for name := range commands {
		if !named[name] && !strings.Contains(usage, "'"+name+"'") {
			t.Errorf("the usage text does not name the command %q", name)
		}
	}
	for name := range named {
		if _, ok := commands[name]; !ok && name != "sandi" && name != "serve" && name != "db" {
			t.Errorf("the usage text names %q, which is no command", name)
		}
	}
}
