// Package blob is where the server keeps attachment ciphertext: one
// interface, Store, with an implementation on the local file system under
// the data directory (the embedded default) and one on any S3-compatible
// object store (for several nodes). Both pass the same conformance suite.
//
// The server never reads what it stores here: a blob is ciphertext made on
// a client (protocol.md, attachments). An object is written as an upload of
// numbered parts, each durable once WritePart returns, and becomes readable
// only when Commit makes it whole, atomically: a partly written object is
// never served, and an upload interrupted by a crash continues from the
// parts already written.
package blob

import (
	"context"
	"errors"
	"io"
)

// PartSize is the size of every part of an upload but the last, which is
// 1 to PartSize bytes. (S3 multipart uploads need parts of at least 5 MiB
// but the last.)
const PartSize = 8 << 20

// ErrNotFound is an object (or upload) that does not exist.
var ErrNotFound = errors.New("blob not found")

// ErrFull is a write refused because the storage is full; nothing of the
// part was kept.
var ErrFull = errors.New("blob storage full")

// ErrUnavailable is a store that cannot be reached, or that answers it
// cannot serve now (an object store's 5xx): the same call may succeed
// later, as a database outage does.
var ErrUnavailable = errors.New("blob storage unavailable")

// Local is implemented by a Store whose WritePart writes to this
// machine's own disks: between two reads of a part's body it waits on
// nothing but them. The server then bounds how many uploads write at once
// (it never bounds a store that forwards to another machine, whose waits
// would hold up every upload).
type Local interface {
	Local() bool
}

// Store keeps objects named by ids of [0-9a-f]{32} (the caller makes them
// unique and random). State is opaque to the caller: Begin returns it, the
// caller persists it (in its database, beside the upload's row) and passes
// the latest one back; WritePart may return a new one.
type Store interface {
	// Begin starts an upload of object id.
	Begin(ctx context.Context, id string) (state string, err error)
	// WritePart stores part n (from 0) of the upload, exactly size bytes
	// read from r (fewer is an error, and nothing of the part is kept). It
	// returns once the part is durable. Writing a part again replaces it.
	WritePart(ctx context.Context, id, state string, n int, r io.Reader, size int64) (newState string, err error)
	// Commit makes parts 0 to parts-1 the object id, whose total size is
	// size. Before it returns nothing of the object can be read; after it
	// the whole object can. Committing a committed object again is not an
	// error.
	Commit(ctx context.Context, id, state string, parts int, size int64) error
	// Open reads length bytes from offset off of a committed object
	// (length < 0: to its end). ErrNotFound if it is not committed.
	Open(ctx context.Context, id string, off, length int64) (io.ReadCloser, error)
	// Delete removes the object or its upload, whichever exists; deleting
	// what does not exist is not an error.
	Delete(ctx context.Context, id, state string) error
}

// Pinger is a Store that can tell, cheaply, whether it can serve now (for
// the server's readiness probe). Ping's error wraps ErrUnavailable when
// the store cannot be reached.
type Pinger interface {
	Ping(ctx context.Context) error
}
