// Package web is sandi's web client: static pages (static/) whose
// cryptography and protocol state live in a WebAssembly module built from
// the Go SDK (web/wasm). `sandi serve` serves it with Handler.
//
// The module and Go's loader for it are build products, not committed:
// `go generate ./web` writes static/sandi.wasm, its gzip-compressed copy
// static/sandi.wasm.gz and static/wasm_exec.js. Without them the package
// still compiles and the page says how to build them.
package web

//go:generate go run gen.go

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// Prefix is the URL path under which Handler serves the page's files; the
// page itself is at /.
const Prefix = "/web/"

// NotBuilt is what the page says when the module was not built.
const NotBuilt = "The sandi web client is not built: run go generate ./web, then restart the server."

// Handler serves the web client: the page at / and its files under Prefix.
// Mount it for both ("GET /{$}" and "GET /web/"); other paths are 404.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return newHandler(sub)
}

// file is one static file with its validator and, for compressible types,
// a gzip-compressed copy: from the generated NAME.gz when there is one,
// else compressed once on first use.
type file struct {
	name  string
	ctype string
	data  []byte
	etag  string

	once sync.Once
	gz   []byte
}

type handler struct {
	files map[string]*file
	built bool
}

// csp keeps the page to its own origin: scripts from the server only,
// WebAssembly allowed, no inline script, no other hosts. Images and media
// may come from blob: URLs, which the page makes of attachments it has
// decrypted.
const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func newHandler(fsys fs.FS) *handler {
	h := &handler{files: map[string]*file{}}
	gzips := map[string][]byte{}
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if base, ok := strings.CutSuffix(p, ".gz"); ok {
			gzips[base] = b
			return nil
		}
		sum := sha256.Sum256(b)
		h.files[p] = &file{name: p, ctype: contentType(p), data: b,
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	for name, gz := range gzips {
		if f := h.files[name]; f != nil {
			f.once.Do(func() { f.gz = gz })
		}
	}
	_, h.built = h.files["sandi.wasm"]
	return h
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".wasm":
		return "application/wasm"
	case ".js":
		return "text/javascript; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || ctype == "application/wasm" || strings.HasPrefix(ctype, "image/svg")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	name := ""
	switch {
	case r.URL.Path == "/":
		if !h.built {
			hd.Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(NotBuilt + "\n"))
			return
		}
		name = "index.html"
	case strings.HasPrefix(r.URL.Path, Prefix):
		name = strings.TrimPrefix(r.URL.Path, Prefix)
	}
	f := h.files[name]
	if f == nil || name == "index.html" && r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if name == "index.html" || name == "attachworker.js" { // a worker has the policy its script comes with
		hd.Set("Content-Security-Policy", csp)
	}
	hd.Set("Content-Type", f.ctype)
	// Names carry no content hash, so a browser revalidates every time;
	// an unchanged file costs a 304.
	hd.Set("Cache-Control", "no-cache")
	body, etag := f.data, f.etag
	if compressible(f.ctype) {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			f.once.Do(func() { f.gz = compress(f.data) })
			if len(f.gz) < len(f.data) {
				body, etag = f.gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
				hd.Set("Content-Encoding", "gzip")
			}
		}
	}
	hd.Set("ETag", etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") || strings.TrimSpace(coding) == "*" {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}
