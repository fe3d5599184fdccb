// Package s3blob is a blob.Store on any S3-compatible object store (AWS S3,
// MinIO, Ceph RGW, versitygw, …), through minio-go.
//
// An upload is an S3 multipart upload of the object's key: Begin starts
// it (the state is its upload id), WritePart puts part n as part number
// n+1, Commit completes it with the parts the store lists, so the state
// stays one id whatever the number of parts. Until CompleteMultipartUpload
// returns the key does not exist, so a partly written object is never
// served; the store makes the completed object appear whole.
//
// A part streams from its reader to the store: over plain HTTP it is sent
// with SigV4's streaming signature (STREAMING-AWS4-HMAC-SHA256-PAYLOAD,
// signed in chunks of 64 KiB as they go out), over TLS with an unsigned
// payload; neither holds the part in memory.
package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"sandi.dev/internal/blob"
)

// Store is a blob.Store in one bucket (under a key prefix, if its URL
// names one).
type Store struct {
	core   minio.Core
	bucket string
	prefix string
	desc   string // the URL without its secret
}

var _ blob.Store = (*Store)(nil)

// Open connects to the store that url names (see Config) and checks that
// its bucket exists and that the credentials can reach it. It does not
// create the bucket: its access policy and lifecycle are the operator's
// to set (docs/operations.md), and a mistyped name should not become a
// new bucket.
func Open(ctx context.Context, url string) (*Store, error) {
	c, err := ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("blob store URL: %w", err)
	}
	if c.AccessKey == "" {
		c.AccessKey, c.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
		if c.AccessKey == "" || c.SecretKey == "" {
			return nil, fmt.Errorf("blob store %s: no credentials: write them in the URL as s3://ACCESS:SECRET@… or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", c)
		}
	}
	s, err := New(c)
	if err != nil {
		return nil, err
	}
	ok, err := s.core.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", s.desc, err)
	}
	if !ok {
		return nil, fmt.Errorf("blob store %s: bucket %q does not exist: create it, private, as docs/operations.md says", s.desc, c.Bucket)
	}
	return s, nil
}

// New returns a Store for c without contacting the server.
func New(c Config) (*Store, error) {
	cl, err := NewClient(c)
	if err != nil {
		return nil, err
	}
	return &Store{core: minio.Core{Client: cl}, bucket: c.Bucket, prefix: c.Prefix, desc: c.String()}, nil
}

// NewClient returns a minio-go client of the server c names, as a Store
// makes it.
func NewClient(c Config) (*minio.Client, error) {
	tr, err := minio.DefaultTransport(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", c, err)
	}
	// Keep a connection for each of many concurrent part uploads rather
	// than the default 16 (a new TCP and TLS handshake each time).
	tr.MaxIdleConnsPerHost = 128
	cl, err := minio.New(c.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure:    c.TLS,
		Region:    c.Region,
		Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", c, err)
	}
	return cl, nil
}

// String names the store without its secret, for logs.
func (s *Store) String() string { return s.desc }

// key returns the object key of id, or an error if id is not 32 lowercase
// hex digits (anything else could name another key).
func (s *Store) key(id string) (string, error) {
	if len(id) != 32 {
		return "", fmt.Errorf("blob id %q: not 32 hex digits", id)
	}
	for i := 0; i < len(id); i++ {
		if !(id[i] >= '0' && id[i] <= '9' || id[i] >= 'a' && id[i] <= 'f') {
			return "", fmt.Errorf("blob id %q: not 32 lowercase hex digits", id)
		}
	}
	return s.prefix + id, nil
}

// Begin starts a multipart upload of id; the state is its upload id.
func (s *Store) Begin(ctx context.Context, id string) (string, error) {
	key, err := s.key(id)
	if err != nil {
		return "", err
	}
	up, err := s.core.NewMultipartUpload(ctx, s.bucket, key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return "", s.fail("begin", id, err)
	}
	return up, nil
}

// WritePart puts part n of the upload, streaming exactly size bytes of r.
func (s *Store) WritePart(ctx context.Context, id, state string, n int, r io.Reader, size int64) (string, error) {
	key, err := s.key(id)
	if err != nil {
		return "", err
	}
	if state == "" {
		return "", fmt.Errorf("blob %s: write part %d: no upload", id, n)
	}
	if n < 0 || n >= 10000 || size < 1 || size > blob.PartSize {
		return "", fmt.Errorf("blob %s: part %d of %d bytes: out of range", id, n, size)
	}
	er := &exactReader{r: r, left: size}
	_, err = s.core.PutObjectPart(ctx, s.bucket, key, state, n+1, er, size, minio.PutObjectPartOptions{})
	if err != nil {
		// The reason the request broke off, if it was ours or the
		// caller's, says more than the transport's error.
		switch {
		case er.err != nil:
			err = er.err
		case ctx.Err() != nil:
			err = ctx.Err()
		}
		return "", s.fail(fmt.Sprintf("write part %d", n), id, err)
	}
	if er.left != 0 {
		// Not reached: the client sends Content-Length bytes or fails.
		return "", fmt.Errorf("blob %s: part %d: %d bytes not sent", id, n, er.left)
	}
	return state, nil
}

// exactReader reads left bytes of r and fails if r ends before.
type exactReader struct {
	r    io.Reader
	left int64
	err  error // the error that ended the reading early
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("the part ended %d bytes short: %w", e.left, io.ErrUnexpectedEOF)
	case err != nil && err != io.EOF:
		e.err = err
	case e.left == 0:
		return n, io.EOF
	default:
		return n, nil
	}
	return n, e.err
}

// Commit completes the upload with parts 1 to parts as the store lists
// them, after checking that each is there with the size it must have.
func (s *Store) Commit(ctx context.Context, id, state string, parts int, size int64) error {
	key, err := s.key(id)
	if err != nil {
		return err
	}
	if parts < 1 || parts > 10000 || size <= int64(parts-1)*blob.PartSize || size > int64(parts)*blob.PartSize {
		return fmt.Errorf("blob %s: %d parts cannot make %d bytes", id, parts, size)
	}
	listed, err := s.listParts(ctx, key, state)
	if err != nil {
		return s.committed(ctx, id, key, size, err)
	}
	done := make([]minio.CompletePart, parts)
	for i := range done {
		want := int64(blob.PartSize)
		if i == parts-1 {
			want = size - int64(parts-1)*blob.PartSize
		}
		p, ok := listed[i+1]
		if !ok {
			return fmt.Errorf("blob %s: commit: part %d is missing", id, i)
		}
		if p.Size != want {
			return fmt.Errorf("blob %s: commit: part %d has %d bytes, not %d", id, i, p.Size, want)
		}
		done[i] = minio.CompletePart{PartNumber: i + 1, ETag: p.ETag}
	}
	_, err = s.core.CompleteMultipartUpload(ctx, s.bucket, key, state, done, minio.PutObjectOptions{})
	if err != nil {
		return s.committed(ctx, id, key, size, err)
	}
	return nil
}

// committed is Commit's answer when the upload could not be listed or
// completed because of err: nil if err says the upload is gone and the
// object is there with size bytes (a Commit before this one completed
// it), else err.
func (s *Store) committed(ctx context.Context, id, key string, size int64, err error) error {
	if !isCode(err, "NoSuchUpload") {
		return s.fail("commit", id, err)
	}
	// A store may end the upload before the object it makes is visible
	// (a concurrent Commit completing it right now): look again a few
	// times before calling the blob missing.
	info, serr := s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	for wait := 10 * time.Millisecond; serr != nil && isCode(serr, "NoSuchKey") && wait <= 640*time.Millisecond; wait *= 2 {
		select {
		case <-ctx.Done():
			return s.fail("commit", id, ctx.Err())
		case <-time.After(wait):
		}
		info, serr = s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	}
	switch {
	case serr == nil && info.Size == size:
		return nil
	case serr == nil:
		return fmt.Errorf("blob %s: committed with %d bytes, not %d", id, info.Size, size)
	}
	return s.fail("commit", id, err)
}

// listParts returns the parts of an upload by part number.
func (s *Store) listParts(ctx context.Context, key, up string) (map[int]minio.ObjectPart, error) {
	if up == "" {
		return nil, minio.ErrorResponse{Code: "NoSuchUpload", Message: "no upload id"}
	}
	out := map[int]minio.ObjectPart{}
	marker := 0
	for {
		res, err := s.core.ListObjectParts(ctx, s.bucket, key, up, marker, 1000)
		if err != nil {
			return nil, err
		}
		for _, p := range res.ObjectParts {
			out[p.PartNumber] = p
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return out, nil
		}
		marker = res.NextPartNumberMarker
	}
}

// Open reads length bytes from off of a committed object (length < 0: to
// its end).
func (s *Store) Open(ctx context.Context, id string, off, length int64) (io.ReadCloser, error) {
	key, err := s.key(id)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("blob %s: negative offset %d", id, off)
	}
	var opts minio.GetObjectOptions
	switch {
	case length == 0:
		if _, err := s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err != nil {
			return nil, s.fail("open", id, err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	case length > 0:
		err = opts.SetRange(off, off+length-1)
	case off > 0:
		err = opts.SetRange(off, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	body, _, _, err := s.core.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		return nil, s.fail("open", id, err)
	}
	return body, nil
}

// Delete aborts the upload state names (every upload of id if state is
// empty) and removes the object.
func (s *Store) Delete(ctx context.Context, id, state string) error {
	key, err := s.key(id)
	if err != nil {
		return err
	}
	ups := []string{state}
	if state == "" {
		ups = nil
		err := s.uploads(ctx, "delete: list uploads", id, key, func(up minio.ObjectMultipartInfo) error {
			if up.Key == key {
				ups = append(ups, up.UploadID)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, up := range ups {
		err := s.core.AbortMultipartUpload(ctx, s.bucket, key, up)
		if err != nil && !isNotFound(err) {
			return s.fail("delete upload", id, err)
		}
	}
	err = s.core.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return s.fail("delete", id, err)
	}
	return nil
}

// Ping implements blob.Pinger: the bucket answers (a HEAD request). Any
// failure (unreachable, a 5xx, credentials refused, the bucket gone) is
// blob.ErrUnavailable: the store cannot serve until someone acts.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err == nil && !ok {
		err = fmt.Errorf("bucket %q does not exist", s.bucket)
	}
	if err != nil {
		return fmt.Errorf("blob store: ping: %w (%v)", blob.ErrUnavailable, err)
	}
	return nil
}

// Walk calls fn with the id of every object last modified, and every
// upload begun, before before (an id may come twice), for a sweep of what
// no database row names any more; fn's error stops the walk. Keys under
// the store's prefix that are not ids are left alone.
func (s *Store) Walk(ctx context.Context, before time.Time, fn func(id string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	ch := s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix})
	defer func() {
		cancel()
		for range ch { // let the lister end
		}
	}()
	for obj := range ch {
		if obj.Err != nil {
			return s.fail("walk", "store", obj.Err)
		}
		id := strings.TrimPrefix(obj.Key, s.prefix)
		if _, err := s.key(id); err != nil || !obj.LastModified.Before(before) {
			continue
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	return s.uploads(ctx, "walk: list uploads", "store", s.prefix, func(up minio.ObjectMultipartInfo) error {
		id := strings.TrimPrefix(up.Key, s.prefix)
		if _, err := s.key(id); err != nil || !up.Initiated.Before(before) {
			return nil
		}
		return fn(id)
	})
}

// uploads calls fn with each unfinished upload of a key starting with
// prefix (not below a further "/"); fn's error stops the listing and is
// returned as it is. The listing's own error is wrapped by fail, with op
// and id.
func (s *Store) uploads(ctx context.Context, op, id, prefix string, fn func(minio.ObjectMultipartInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	ch := s.core.ListIncompleteUploads(ctx, s.bucket, prefix, false)
	defer func() {
		cancel()
		for range ch { // let the lister end
		}
	}()
	for up := range ch {
		if up.Err != nil {
			return s.fail(op, id, up.Err)
		}
		if err := fn(up); err != nil {
			return err
		}
	}
	return nil
}

// fail wraps an error of the store (id names the blob, or "store" for a
// listing), as blob.ErrNotFound where it says the
// object or upload does not exist, blob.ErrFull where the store is out of
// space, blob.ErrUnavailable where it cannot be reached or cannot serve
// now.
func (s *Store) fail(op, id string, err error) error {
	switch {
	case isNotFound(err):
		return fmt.Errorf("blob %s: %s: %w (%v)", id, op, blob.ErrNotFound, err)
	case isFull(err):
		return fmt.Errorf("blob %s: %s: %w (%v)", id, op, blob.ErrFull, err)
	case isUnavailable(err):
		return fmt.Errorf("blob %s: %s: %w (%v)", id, op, blob.ErrUnavailable, err)
	}
	return fmt.Errorf("blob %s: %s: %w", id, op, err)
}

// isUnavailable is an error of a store that could not be reached (after
// minio-go's own retries) or that answered a 5xx (InternalError,
// ServiceUnavailable, SlowDown, a gateway's 502 or 504), not 501
// NotImplemented. The caller's own cancellation or deadline is not one.
func isUnavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var e minio.ErrorResponse
	if errors.As(err, &e) {
		return e.StatusCode >= 500 && e.StatusCode != http.StatusNotImplemented
	}
	return minio.IsNetworkOrHostDown(err, false)
}

// isFull is an error of a store out of space or over a quota: 507
// InsufficientStorage (S3's code; versitygw), XMinioStorageFull (MinIO),
// QuotaExceeded (Ceph RGW, MinIO bucket quotas).
func isFull(err error) bool {
	var e minio.ErrorResponse
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case "InsufficientStorage", "XMinioStorageFull", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded":
		return true
	}
	return e.StatusCode == http.StatusInsufficientStorage
}

func isNotFound(err error) bool {
	var e minio.ErrorResponse
	return errors.As(err, &e) && (e.Code == "NoSuchKey" || e.Code == "NoSuchUpload" ||
		e.StatusCode == http.StatusNotFound && e.Code != "NoSuchBucket")
}

func isCode(err error, code string) bool {
	var e minio.ErrorResponse
	return errors.As(err, &e) && e.Code == code
}
