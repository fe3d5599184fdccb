// Package migrations holds the versioned schema of sandi's store, embedded
// in the binary and applied with goose when a store opens.
//
// One set of files serves SQLite and PostgreSQL: the DDL is written in the
// subset both accept. Binary columns are declared BYTEA, PostgreSQL's binary
// type; SQLite accepts any type name, gives BYTEA numeric affinity, and
// numeric affinity never converts a BLOB value, so the bytes bound by the
// store are stored and read back unchanged. BOOLEAN, TRUE and FALSE, partial
// indexes, ON CONFLICT and RETURNING exist in both (SQLite 3.35 or newer).
package migrations

import "embed"

// FS holds the migration files, named NNNNN_what.sql as goose expects.
//
//go:embed *.sql
var FS embed.FS
