package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// fakeFS is a built client whose module is compressible.
func fakeFS(withGz bool) fstest.MapFS {
	wasm := bytes.Repeat([]byte("\x00asm module bytes "), 4096)
	fsys := fstest.MapFS{
		"index.html":   {Data: []byte("<!doctype html><title>sandi</title>")},
		"app.js":       {Data: []byte("console.log('sandi')")},
		"style.css":    {Data: []byte("body{}")},
		"wasm_exec.js": {Data: []byte("// loader")},
		"sandi.wasm":   {Data: wasm},
	}
	if withGz {
		fsys["sandi.wasm.gz"] = &fstest.MapFile{Data: gz(wasm)}
	}
	return fsys
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func get(h http.Handler, path string, hdr ...string) *http.Response {
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func body(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestModuleCompressedWithValidator(t *testing.T) {
	for _, pre := range []bool{true, false} {
		fsys := fakeFS(pre)
		h := newHandler(fsys)
		raw := fsys["sandi.wasm"].Data

		r := get(h, "/web/sandi.wasm", "Accept-Encoding", "gzip, deflate, br")
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/wasm" {
			t.Fatalf("precompressed=%v: status %d, type %q", pre, r.StatusCode, r.Header.Get("Content-Type"))
		}
		if r.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(r.Header.Get("Vary"), "Accept-Encoding") {
			t.Fatalf("precompressed=%v: encoding %q, vary %q", pre, r.Header.Get("Content-Encoding"), r.Header.Get("Vary"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body(t, r)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("precompressed=%v: the gzip body does not decompress to the module (%v)", pre, err)
		}
		etag := r.Header.Get("ETag")
		if etag == "" || r.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("precompressed=%v: ETag %q, Cache-Control %q", pre, etag, r.Header.Get("Cache-Control"))
		}
		if r := get(h, "/web/sandi.wasm", "Accept-Encoding", "gzip", "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
			t.Fatalf("precompressed=%v: revalidation with the ETag: %d, want 304", pre, r.StatusCode)
		}

		// A client that does not accept gzip gets the raw bytes, under
		// another validator.
		r = get(h, "/web/sandi.wasm", "Accept-Encoding", "identity")
		if r.Header.Get("Content-Encoding") != "" || !bytes.Equal(body(t, r), raw) {
			t.Fatalf("precompressed=%v: identity request got encoding %q", pre, r.Header.Get("Content-Encoding"))
		}
		if r.Header.Get("ETag") == etag {
			t.Fatalf("precompressed=%v: the raw and gzip bodies share the ETag %s", pre, etag)
		}
		if r := get(h, "/web/sandi.wasm", "Accept-Encoding", "gzip;q=0"); r.Header.Get("Content-Encoding") != "" {
			t.Fatalf("gzip;q=0 was answered with gzip")
		}
	}
}

func TestPageAndFiles(t *testing.T) {
	h := newHandler(fakeFS(true))
	r := get(h, "/")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self' 'wasm-unsafe-eval'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("/: Content-Security-Policy %q", csp)
	}
	// Decrypted attachments show from blob: URLs as images and media only;
	// a blob: URL is never a script, a frame or an object.
	for _, d := range strings.Split(r.Header.Get("Content-Security-Policy"), ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(d), " ")
		if want := name == "img-src" || name == "media-src"; strings.Contains(d, "blob:") != want {
			t.Fatalf("/: Content-Security-Policy directive %q: blob: allowed %v, want %v", d, !want, want)
		}
	}
	if r := get(h, "/web/app.js"); !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("app.js: type %q", r.Header.Get("Content-Type"))
	}
	// The attachment worker has the policy its script comes with: the
	// page's.
	if w := get(Handler(), "/web/attachworker.js"); w.StatusCode != 200 || w.Header.Get("Content-Security-Policy") != r.Header.Get("Content-Security-Policy") {
		t.Fatalf("attachworker.js: %d, Content-Security-Policy %q", w.StatusCode, w.Header.Get("Content-Security-Policy"))
	}
	for _, p := range []string{"/web/nothing.js", "/web/index.html", "/web/", "/web/sandi.wasm.gz", "/other"} {
		if r := get(h, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
}

// TestNotBuilt: without the module the page says how to build it.
func TestNotBuilt(t *testing.T) {
	fsys := fakeFS(false)
	delete(fsys, "sandi.wasm")
	r := get(newHandler(fsys), "/")
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body(t, r)), "run go generate ./web") {
		t.Fatalf("status %d, body %q", r.StatusCode, body(t, r))
	}
}

// TestEmbedsWhatGenerateWrote checks that the package embeds the
// generated module when it is there, and the committed files always.
func TestEmbedsWhatGenerateWrote(t *testing.T) {
	h := Handler().(*handler)
	for _, name := range []string{"index.html", "app.js", "trust.js", "style.css"} {
		if h.files[name] == nil {
			t.Errorf("static/%s is not embedded", name)
		}
	}
	_, err := os.Stat(filepath.Join("static", "sandi.wasm"))
	if built := err == nil; built != h.built {
		t.Errorf("static/sandi.wasm exists: %v, but the handler says built: %v", built, h.built)
	}
}

// maxModuleGzip bounds the compressed module a browser downloads. It was
// 1.84 MiB when written; linking net/http's Transport again (instead of
// the SDK's fetch transport) would take it to about 3 MiB. Archives
// (history transfer, backup and restore) took it from 2.13 to 2.20 MiB.
const maxModuleGzip = 2300 << 10

// TestModuleSize fails when the generated module grows past the bound (it
// needs `go generate ./web`, as the browser tests do).
func TestModuleSize(t *testing.T) {
	gzPath := filepath.Join("static", "sandi.wasm.gz")
	fi, err := os.Stat(gzPath)
	if err != nil {
		t.Fatalf("%s is missing: run `go generate ./web`", gzPath)
	}
	if fi.Size() > maxModuleGzip {
		t.Errorf("the module is %d bytes compressed, over the %d-byte bound: what made it grow?", fi.Size(), maxModuleGzip)
	}
	t.Logf("sandi.wasm.gz: %d bytes", fi.Size())
}
