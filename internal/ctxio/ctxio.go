// Package ctxio ends reads when a context is done.
package ctxio

import (
	"context"
	"io"
)

// Reader reads r until ctx is done; every read after that fails with
// ctx's error. A copy from a network body or a request body then stops
// at its next read, where the source would otherwise go on delivering
// what it has buffered (an HTTP transport notices a cancelled request on
// a goroutine of its own).
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
