// Package tests3 gives tests a real S3-compatible object store: each call
// of URL creates a fresh bucket on a throwaway versitygw (a real S3 gateway
// over a directory) that the test binary starts once, on 127.0.0.1 and a
// free port over a temporary directory, and stops when its tests are done.
//
// A test package that uses it must stop the server through TestMain:
//
//	func TestMain(m *testing.M) { tests3.Main(m) }
//
// The versitygw binary is found at $SANDI_TEST_S3_BIN, else on PATH, else
// in the user's cache directory (sandi/versitygw-v1.8.0 under
// $XDG_CACHE_HOME or ~/.cache), where scripts/test.sh installs it. With SANDI_TEST_S3_URL set
// (an s3:// URL of a server whose credentials may create buckets; its
// bucket part is ignored), the buckets are made there instead and no server
// is started. Without either the test fails: the S3 store is part of the
// test suite, never skipped.
package tests3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"sandi.dev/internal/blob/s3blob"
	"sandi.dev/internal/testproc"
)

const (
	// EnvURL names the environment variable that points the tests at an
	// existing server.
	EnvURL = "SANDI_TEST_S3_URL"
	// EnvBin names the environment variable that gives the versitygw
	// binary.
	EnvBin = "SANDI_TEST_S3_BIN"
	// Install is the command that installs the server where this package
	// finds it.
	Install = "GOBIN=${XDG_CACHE_HOME:-$HOME/.cache}/sandi/versitygw-v1.8.0 go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
)

var (
	mainUsed  atomic.Bool
	startOnce sync.Once
	srv       *server
	startErr  error
)

// Main runs the tests of a package, stops the server if one was started
// and exits. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with more to do: it runs the tests, stops
// the server and returns m.Run's exit code.
func Run(m *testing.M) int { return Around(m.Run) }

// Around is Run for a TestMain that uses another such helper too
// (testpg.Around): it calls run, stops the server and returns run's exit
// code.
func Around(run func() int) int {
	mainUsed.Store(true)
	code := run()
	if srv != nil {
		if err := srv.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "tests3:", err)
		}
	}
	return code
}

// URL returns the s3:// URL (credentials included, tls=false) of a new,
// empty bucket for t. Buckets on the package's own server go with its
// directory; on a server named by SANDI_TEST_S3_URL they are emptied and
// removed when t ends.
func URL(t testing.TB) string {
	t.Helper()
	base, own := os.Getenv(EnvURL), false
	if base == "" {
		if !mainUsed.Load() {
			t.Fatal("tests3: the package's TestMain must call tests3.Main(m) (or tests3.Run), which stops the S3 server after the tests")
		}
		startOnce.Do(func() { srv, startErr = start() })
		if startErr != nil {
			t.Fatalf("tests3: %v", startErr)
		}
		base, own = srv.url, true
	}
	return newBucket(t, base, own)
}

// newBucket makes a bucket of a random name on the server of base (an
// s3:// URL) and returns its URL; unless own, it is emptied and removed
// when t ends.
func newBucket(t testing.TB, base string, own bool) string {
	t.Helper()
	c, err := s3blob.ParseURL(base)
	if err != nil {
		t.Fatalf("tests3: %s: %v", EnvURL, err)
	}
	if c.AccessKey == "" {
		c.AccessKey, c.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	c.Bucket, c.Prefix = "sandi-test-"+randomHex(8), ""
	cl, err := s3blob.NewClient(c)
	if err != nil {
		t.Fatalf("tests3: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.MakeBucket(ctx, c.Bucket, minio.MakeBucketOptions{Region: c.Region}); err != nil {
		t.Fatalf("tests3: create bucket %s on %s: %v", c.Bucket, c, err)
	}
	if !own {
		t.Cleanup(func() { removeBucket(t, cl, c.Bucket) })
	}
	return c.URL()
}

// Client returns a client of the server url names (as URL returns), to
// look at a bucket from outside the store under test.
func Client(t testing.TB, url string) (*minio.Client, s3blob.Config) {
	t.Helper()
	c, err := s3blob.ParseURL(url)
	if err != nil {
		t.Fatalf("tests3: %v", err)
	}
	cl, err := s3blob.NewClient(c)
	if err != nil {
		t.Fatalf("tests3: %v", err)
	}
	return cl, c
}

// removeBucket aborts the bucket's uploads, removes its objects and then
// the bucket.
func removeBucket(t testing.TB, cl *minio.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for up := range cl.ListIncompleteUploads(ctx, bucket, "", true) {
		if up.Err != nil {
			t.Errorf("tests3: list uploads of %s: %v", bucket, up.Err)
			return
		}
		if err := cl.RemoveIncompleteUpload(ctx, bucket, up.Key); err != nil {
			t.Errorf("tests3: abort upload %s: %v", up.Key, err)
		}
	}
	for obj := range cl.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Errorf("tests3: list %s: %v", bucket, obj.Err)
			return
		}
		if err := cl.RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			t.Errorf("tests3: remove %s: %v", obj.Key, err)
		}
	}
	if err := cl.RemoveBucket(ctx, bucket); err != nil {
		t.Errorf("tests3: remove bucket %s: %v", bucket, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// server is a running throwaway versitygw.
type server struct {
	dir  string // the package server's temporary directory: root/ (the buckets), versitygw.log
	url  string // s3:// URL without a bucket part
	cmd  *exec.Cmd
	done chan error
}

// Bin returns the path of the versitygw binary, or an error that names
// the command installing it.
func Bin() (string, error) {
	if p := os.Getenv(EnvBin); p != "" {
		if !isExec(p) {
			return "", fmt.Errorf("%s=%s is not an executable file: install versitygw with %s", EnvBin, p, Install)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	if dir, err := os.UserCacheDir(); err == nil {
		if p := filepath.Join(dir, "sandi", "versitygw-v1.8.0", "versitygw"); isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no versitygw (the S3 server the tests run against) in $%s, on PATH or in the cache directory: install it with %s (scripts/test.sh does), or set %s to an S3 server", EnvBin, Install, EnvURL)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func start() (*server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sandi-s3-")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s, err := launchRetry(bin, root, filepath.Join(dir, "versitygw.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.dir = dir
	return s, nil
}

// Server starts a versitygw of t's own that keeps its buckets in dir (a
// small file system, say), stops it when t ends, and returns the s3:// URL
// of a new bucket on it. It needs the binary, as URL does without
// SANDI_TEST_S3_URL.
func Server(t testing.TB, dir string) string {
	t.Helper()
	url, _ := StoppableServer(t, dir)
	return url
}

// StoppableServer is Server that also returns a function stopping the
// server before t ends (for a test of an unreachable store); the server
// is stopped once.
func StoppableServer(t testing.TB, dir string) (url string, stop func() error) {
	t.Helper()
	bin, err := Bin()
	if err != nil {
		t.Fatalf("tests3: %v", err)
	}
	s, err := launchRetry(bin, dir, filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatalf("tests3: %v", err)
	}
	var once sync.Once
	var herr error
	stop = func() error {
		once.Do(func() { herr = s.halt() })
		return herr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("tests3: %v", err)
		}
	})
	return newBucket(t, s.url, true), stop
}

// launchRetry starts versitygw on root. A port is free when chosen but
// may be taken before versitygw binds it: it tries a few.
func launchRetry(bin, root, logPath string) (*server, error) {
	for attempt := 0; ; attempt++ {
		s, err := launch(bin, root, logPath)
		if err == nil || attempt == 2 {
			return s, err
		}
	}
}

func launch(bin, root, logPath string) (*server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	access, secret := "sandi"+randomHex(6), randomHex(20)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--port", addr, "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+access, "ROOT_SECRET_KEY="+secret)
	cmd.Dir = filepath.Dir(logPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = testproc.ProcAttr(nil, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1),
		url: fmt.Sprintf("s3://%s:%s@%s/none?tls=false", access, secret, addr)}
	go func() { s.done <- cmd.Wait() }()

	c, err := s3blob.ParseURL(s.url)
	if err != nil {
		s.halt()
		return nil, err
	}
	cl, err := s3blob.NewClient(c)
	if err != nil {
		s.halt()
		return nil, err
	}
	err = testproc.Await("versitygw", s.done, logPath, 60*time.Second, func(ctx context.Context) error {
		_, err := cl.ListBuckets(ctx)
		return err
	})
	if err != nil {
		s.halt()
		return nil, err
	}
	return s, nil
}

// halt stops the server process (SIGTERM, then SIGKILL after 20 s).
func (s *server) halt() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case werr := <-s.done:
		s.done <- werr
		return nil
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		s.done <- <-s.done
		return errors.New("versitygw did not stop within 20s; killed")
	}
}

// stop halts the server and removes its directory.
func (s *server) stop() error {
	return errors.Join(s.halt(), os.RemoveAll(s.dir))
}
