package migrations

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// Nodes of two consecutive releases run side by side on one database
// during a rolling upgrade (docs/operations.md, Running a cluster), so a
// migration's Up section only adds: tables, indexes, nullable columns or
// columns with a default, and data. It never drops, renames or changes a
// column or table that the previous release's queries use.
func TestMigrationsAdditive(t *testing.T) {
	withDefault := regexp.MustCompile(`(?i)\bDEFAULT\b`)
	forbidden := []struct {
		re        *regexp.Regexp
		unlessDef bool // allowed with a DEFAULT
		why       string
	}{
		{regexp.MustCompile(`(?i)\bDROP\s+(TABLE|COLUMN|INDEX|VIEW|SEQUENCE)\b`), false, "drops what older nodes may read"},
		{regexp.MustCompile(`(?i)\bRENAME\b`), false, "renames what older nodes name"},
		{regexp.MustCompile(`(?i)\bALTER\s+COLUMN\b`), false, "changes a column older nodes use"},
		{regexp.MustCompile(`(?i)\bADD\s+COLUMN\b[^;]*\bNOT\s+NULL\b`), true, "a NOT NULL column without a default breaks older nodes' inserts"},
	}
	files, err := fs.Glob(FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	for _, f := range files {
		data, err := FS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		up, _, _ := strings.Cut(string(data), "-- +goose Down")
		var code strings.Builder
		for _, line := range strings.Split(up, "\n") {
			line, _, _ = strings.Cut(line, "--")
			code.WriteString(line + "\n")
		}
		for _, stmt := range strings.Split(code.String(), ";") {
			for _, fb := range forbidden {
				if !fb.re.MatchString(stmt) || fb.unlessDef && withDefault.MatchString(stmt) {
					continue
				}
				t.Errorf("%s: %q: %s", f, strings.TrimSpace(stmt), fb.why)
			}
		}
	}
}
