package main

import (
	"context"
	"strings"

	"sandi.dev/internal/blob/s3blob"
)

// openS3Blobs opens the blob store when spec (--blobs, SANDI_BLOBS) is an
// s3:// URL; ok is false for any other spec, a directory. A URL that does
// not parse, or of another scheme, is a usage error (exit status 2), so
// that a mistyped URL never becomes a directory of that name; a store that
// cannot be reached, or lacks the bucket, is an error.
func openS3Blobs(ctx context.Context, spec string) (st *s3blob.Store, ok bool, err error) {
	if !strings.HasPrefix(spec, s3blob.Scheme) {
		if strings.Contains(spec, "://") {
			return nil, true, usageError{"--blobs: a directory or an s3:// URL"}
		}
		return nil, false, nil
	}
	if _, err := s3blob.ParseURL(spec); err != nil {
		return nil, true, usageError{"--blobs: " + err.Error()}
	}
	s, err := s3blob.Open(ctx, spec)
	if err != nil {
		return nil, true, err
	}
	return s, true, nil
}
