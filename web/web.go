// Package web is sandi's web client: static pages (static/) whose
// cryptography and protocol state live in a WebAssembly module built from
// the Go SDK (web/wasm). `sandi serve` serves it with Handler. The page's
// scripts are ES modules, one per view, without a bundler: app.js starts
// the page and imports the others.
//
// The module and Go's loader for it are build products, not committed:
// `go generate ./web` writes static/sandi.wasm, its brotli- and
// gzip-compressed copies static/sandi.wasm.br and .gz, and
// static/wasm_exec.js. Without them the package still compiles and the
// page says how to build them.
//
// Every file but the page and the service worker is also served under a
// content-hashed name (app.0123456789ab.js), which the page uses and
// browsers cache as immutable: the handler rewrites a string "web/NAME" or
// "/web/NAME" in the page and the scripts, and "./NAME" (an import) in the
// scripts, to it, so a worker that fetches "/web/sandi.wasm" gets the
// page's copy of the module from the cache, and a module's imports are
// the service worker's cached files.
package web

//go:generate go run gen.go

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"sort"
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

// file is one static file with its validator, its content-hashed name and,
// for compressible types, compressed copies: brotli from the generated
// NAME.br when there is one, gzip from the generated NAME.gz when there is
// one, else gzip compressed once on first use.
type file struct {
	name   string
	hashed string // NAME.HASH.EXT, served as immutable; "" for the page and the service worker
	ctype  string
	data   []byte
	etag   string
	br     []byte

	once sync.Once
	gz   []byte
}

type handler struct {
	files map[string]*file // by name and by hashed name
	built bool
}

// csp keeps the page to its own origin: scripts from the server only,
// WebAssembly allowed, no inline script, no other hosts. Images and media
// may come from blob: URLs, which the page makes of attachments it has
// decrypted.
const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// immutable is the Cache-Control of a content-hashed name: its bytes never
// change, so a browser keeps it for a year without asking again.
const immutable = "public, max-age=31536000, immutable"

// serviceWorker is the service worker's file: served under its own name
// only (a browser checks it for updates), with a scope of the whole origin,
// and given the list of the app's hashed files to cache (shellMarker).
const (
	serviceWorker = "sw.js"
	shellMarker   = "/*SHELL*/"
)

func newHandler(fsys fs.FS) *handler {
	h := &handler{files: map[string]*file{}}
	pre, orig := map[string][]byte{}, map[string][]byte{}
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".gz") || strings.HasSuffix(p, ".br") {
			pre[p] = b
			return nil
		}
		h.files[p] = &file{name: p, ctype: contentType(p), data: b}
		orig[p] = b
		return nil
	})
	// Names are hashed leaves first: a file is hashed after every file it
	// names (the page names the scripts, a script the module, a worker's
	// script or the modules it imports), so its hash covers the names it
	// refers to. A name is rewritten where it is a string of its own,
	// "web/NAME" or "/web/NAME" in the page and the scripts, and "./NAME"
	// (an import beside it) in the scripts. Scripts that import each other
	// in a cycle are hashed as one group: each one's hash covers all of
	// theirs. The service worker comes last and lists them all.
	var names []string
	for name := range h.files {
		if name != serviceWorker && name != "index.html" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	script := func(name string) bool { return name == serviceWorker || path.Ext(name) == ".js" }
	scriptRefs := regexp.MustCompile(`"(?:/?` + regexp.QuoteMeta(Prefix[1:]) + `|\./)([^"/]+)"`)
	named := func(name string) []string {
		if !script(name) {
			return nil
		}
		var out []string
		for _, m := range scriptRefs.FindAllSubmatch(h.files[name].data, -1) {
			if other := string(m[1]); h.files[other] != nil && other != serviceWorker && other != "index.html" {
				out = append(out, other)
			}
		}
		return out
	}
	var pageOld, scriptOld []string // old, new pairs for strings.Replacer
	rewrite := func(f *file) {
		switch {
		case f.name == "index.html" && len(pageOld) > 0:
			f.data = []byte(strings.NewReplacer(pageOld...).Replace(string(f.data)))
		case script(f.name) && len(scriptOld) > 0:
			f.data = []byte(strings.NewReplacer(scriptOld...).Replace(string(f.data)))
		}
	}
	var shell []string
	for _, group := range cycles(names, named) {
		for _, name := range group {
			rewrite(h.files[name]) // the names it refers to outside its group
		}
		sums := map[string][32]byte{}
		cycle := len(group) > 1 || slices.Contains(named(group[0]), group[0])
		if !cycle {
			sums[group[0]] = sha256.Sum256(h.files[group[0]].data)
		} else {
			all := sha256.New()
			for _, name := range group {
				all.Write([]byte(name + "\x00"))
				all.Write(h.files[name].data)
				all.Write([]byte{0})
			}
			for _, name := range group {
				sums[name] = sha256.Sum256(append(all.Sum(nil), name...))
			}
		}
		for _, name := range group {
			f, sum := h.files[name], sums[name]
			ext := path.Ext(name)
			f.hashed = strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:6]) + ext
			h.files[f.hashed] = f
			// Relative to the page ("web/NAME"), absolute ("/web/NAME", as
			// a worker under /web/ names the module) or beside the script
			// ("./NAME", an import).
			for _, form := range []string{Prefix[1:], Prefix} {
				pageOld = append(pageOld, `"`+form+name+`"`, `"`+form+f.hashed+`"`)
			}
			scriptOld = append(scriptOld, pageOld[len(pageOld)-4:]...)
			scriptOld = append(scriptOld, `"./`+name+`"`, `"./`+f.hashed+`"`)
			shell = append(shell, Prefix+f.hashed)
		}
		if cycle {
			for _, name := range group {
				rewrite(h.files[name]) // the names of its group
			}
		}
	}
	for _, name := range []string{"index.html", serviceWorker} {
		if f := h.files[name]; f != nil {
			rewrite(f)
			if name == serviceWorker {
				list := `"/"`
				for _, u := range shell {
					list += `, "` + u + `"`
				}
				f.data = bytes.Replace(f.data, []byte(shellMarker), []byte(list), 1)
			}
		}
	}
	for name, f := range h.files {
		if name != f.name {
			continue // a hashed name
		}
		sum := sha256.Sum256(f.data)
		f.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
		if bytes.Equal(orig[name], f.data) {
			// Precompressed copies are of the file as written; one the
			// handler rewrote is compressed again.
			f.br = pre[name+".br"]
			if gz := pre[name+".gz"]; gz != nil {
				f.once.Do(func() { f.gz = gz })
			}
		}
	}
	_, h.built = h.files["sandi.wasm"]
	return h
}

// cycles groups names by the names each one refers to (named), leaves
// first: a group's names refer only to names of the groups before it and
// to each other, in a cycle (Tarjan's strongly connected components; a
// name in no cycle is a group of its own). Each group is sorted.
func cycles(names []string, named func(string) []string) [][]string {
	index, low := map[string]int{}, map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var out [][]string
	var visit func(n string)
	visit = func(n string) {
		index[n], low[n] = len(index), len(index)
		stack = append(stack, n)
		onStack[n] = true
		for _, m := range named(n) {
			if _, seen := index[m]; !seen {
				visit(m)
				low[n] = min(low[n], low[m])
			} else if onStack[m] {
				low[n] = min(low[n], index[m])
			}
		}
		if low[n] != index[n] {
			return
		}
		var group []string
		for {
			m := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[m] = false
			group = append(group, m)
			if m == n {
				break
			}
		}
		sort.Strings(group)
		out = append(out, group)
	}
	for _, n := range names {
		if _, seen := index[n]; !seen {
			visit(n)
		}
	}
	return out
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
	switch f.name {
	case "index.html", "attachworker.js": // a worker has the policy its script comes with
		hd.Set("Content-Security-Policy", csp)
	case serviceWorker:
		hd.Set("Service-Worker-Allowed", "/")
	}
	hd.Set("Content-Type", f.ctype)
	if name == f.hashed {
		hd.Set("Cache-Control", immutable)
	} else {
		// A name without its hash is revalidated every time; an unchanged
		// file costs a 304.
		hd.Set("Cache-Control", "no-cache")
	}
	body, etag := f.data, f.etag
	if compressible(f.ctype) {
		hd.Add("Vary", "Accept-Encoding")
		switch {
		case f.br != nil && accepts(r, "br"):
			body, etag = f.br, strings.TrimSuffix(f.etag, `"`)+`-br"`
			hd.Set("Content-Encoding", "br")
		case accepts(r, "gzip"):
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

// accepts reports whether the request's Accept-Encoding allows coding
// (named, or by "*", with a weight above zero).
func accepts(r *http.Request, coding string) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		c, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if c = strings.TrimSpace(c); strings.EqualFold(c, coding) || c == "*" {
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
