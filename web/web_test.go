package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"
)

// fakeFS is a built client whose module is compressible; the page names
// its files as index.html does, app.js names the module and a worker's
// script (whose name sorts after its own), which names the module.
func fakeFS(withGz bool) fstest.MapFS {
	wasm := bytes.Repeat([]byte("\x00asm module bytes "), 4096)
	fsys := fstest.MapFS{
		"index.html":   {Data: []byte(`<!doctype html><title>sandi</title><link rel="stylesheet" href="web/style.css"><script src="web/app.js" defer></script>`)},
		"app.js":       {Data: []byte(`console.log('sandi'); fetch("web/sandi.wasm"); new Worker("web/worker.js")`)},
		"style.css":    {Data: []byte("body{}")},
		"wasm_exec.js": {Data: []byte("// loader")},
		"sandi.wasm":   {Data: wasm},
		"sw.js":        {Data: []byte("const shell = [/*SHELL*/];")},
		"worker.js":    {Data: []byte(`fetch("/web/sandi.wasm")`)},
	}
	if withGz {
		fsys["sandi.wasm.gz"] = &fstest.MapFile{Data: gz(wasm)}
		fsys["sandi.wasm.br"] = &fstest.MapFile{Data: br(wasm)}
	}
	return fsys
}

func br(b []byte) []byte {
	var buf bytes.Buffer
	bw := brotli.NewWriter(&buf)
	bw.Write(b)
	bw.Close()
	return buf.Bytes()
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

		r := get(h, "/web/sandi.wasm", "Accept-Encoding", "gzip, deflate")
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
	for _, name := range []string{"index.html", "app.js", "trust.js", "style.css", "sw.js", "offline.js", "notify.js", "list.js"} {
		if h.files[name] == nil {
			t.Errorf("static/%s is not embedded", name)
		}
	}
	_, err := os.Stat(filepath.Join("static", "sandi.wasm"))
	if built := err == nil; built != h.built {
		t.Errorf("static/sandi.wasm exists: %v, but the handler says built: %v", built, h.built)
	}
}

// TestModuleBrotli: a browser that accepts br gets the generated brotli
// copy, one that accepts only gzip the gzip copy, each under its own
// validator; br;q=0 is honoured.
func TestModuleBrotli(t *testing.T) {
	fsys := fakeFS(true)
	h := newHandler(fsys)
	raw := fsys["sandi.wasm"].Data
	r := get(h, "/web/sandi.wasm", "Accept-Encoding", "gzip, deflate, br")
	if r.Header.Get("Content-Encoding") != "br" || !strings.Contains(r.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("encoding %q, vary %q, want br", r.Header.Get("Content-Encoding"), r.Header.Get("Vary"))
	}
	got, err := io.ReadAll(brotli.NewReader(bytes.NewReader(body(t, r))))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("the br body does not decompress to the module (%v)", err)
	}
	brTag := r.Header.Get("ETag")
	gzr := get(h, "/web/sandi.wasm", "Accept-Encoding", "gzip, br;q=0")
	if gzr.Header.Get("Content-Encoding") != "gzip" || gzr.Header.Get("ETag") == brTag {
		t.Fatalf("br;q=0: encoding %q, ETag %q (br's %q)", gzr.Header.Get("Content-Encoding"), gzr.Header.Get("ETag"), brTag)
	}
	if r := get(h, "/web/sandi.wasm", "Accept-Encoding", "br", "If-None-Match", brTag); r.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation with the br ETag: %d, want 304", r.StatusCode)
	}
	// Without a generated copy nothing is compressed with brotli at
	// serve time: gzip it is.
	delete(fsys, "sandi.wasm.br")
	if r := get(newHandler(fsys), "/web/sandi.wasm", "Accept-Encoding", "br, gzip"); r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("without sandi.wasm.br: encoding %q, want gzip", r.Header.Get("Content-Encoding"))
	}
}

// TestHashedNames: the page names its files by content-hashed names, which
// are served as immutable; a script names the module by its hashed name;
// the plain names still answer, revalidated; the service worker lists the
// hashed names and may control the whole origin. A change to a file
// changes its hashed name and the page's.
func TestHashedNames(t *testing.T) {
	fsys := fakeFS(true)
	h := newHandler(fsys)
	page := string(body(t, get(h, "/")))
	hashedRef := regexp.MustCompile(`"web/([a-z_]+)\.([0-9a-f]{12})\.(js|css)"`)
	refs := hashedRef.FindAllStringSubmatch(page, -1)
	if len(refs) != 2 || strings.Contains(page, `"web/app.js"`) || strings.Contains(page, `"web/style.css"`) {
		t.Fatalf("the page names its files %q", page)
	}
	for _, m := range refs {
		name, hashed := m[1]+"."+m[3], m[1]+"."+m[2]+"."+m[3]
		r := get(h, "/web/"+hashed, "Accept-Encoding", "gzip")
		if r.StatusCode != 200 || r.Header.Get("Cache-Control") != immutable {
			t.Fatalf("%s: %d, Cache-Control %q", hashed, r.StatusCode, r.Header.Get("Cache-Control"))
		}
		plain := get(h, "/web/"+name, "Accept-Encoding", "gzip")
		if plain.StatusCode != 200 || plain.Header.Get("Cache-Control") != "no-cache" || !bytes.Equal(body(t, plain), body(t, r)) {
			t.Fatalf("%s: %d, Cache-Control %q, or other bytes than %s", name, plain.StatusCode, plain.Header.Get("Cache-Control"), hashed)
		}
	}
	app := string(body(t, get(h, "/web/app.js")))
	wasmRef := regexp.MustCompile(`"web/sandi\.[0-9a-f]{12}\.wasm"`).FindString(app)
	if wasmRef == "" {
		t.Fatalf("app.js does not name the module by its hashed name: %q", app)
	}
	if r := get(h, "/"+strings.Trim(wasmRef, `"`), "Accept-Encoding", "br"); r.StatusCode != 200 || r.Header.Get("Cache-Control") != immutable || r.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("%s: %d, Cache-Control %q, encoding %q", wasmRef, r.StatusCode, r.Header.Get("Cache-Control"), r.Header.Get("Content-Encoding"))
	}
	workerRef := regexp.MustCompile(`new Worker\("web/worker\.[0-9a-f]{12}\.js"\)`).FindString(app)
	if workerRef == "" {
		t.Fatalf("app.js does not name the worker's script by its hashed name: %q", app)
	}
	worker := string(body(t, get(h, "/web/worker.js")))
	if hashed := string(body(t, get(h, "/"+strings.TrimSuffix(strings.TrimPrefix(workerRef, `new Worker("`), `")`)))); hashed != worker {
		t.Fatalf("%s reads %q, want %q", workerRef, hashed, worker)
	}
	if want := `fetch("/` + strings.Trim(wasmRef, `"`) + `")`; worker != want {
		t.Fatalf("worker.js reads %q, want %q", worker, want)
	}
	if r := get(h, "/web/app.000000000000.js"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("a wrong hash: %d, want 404", r.StatusCode)
	}

	sw := get(h, "/web/sw.js")
	swText := string(body(t, sw))
	if sw.Header.Get("Service-Worker-Allowed") != "/" || sw.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("sw.js: Service-Worker-Allowed %q, Cache-Control %q", sw.Header.Get("Service-Worker-Allowed"), sw.Header.Get("Cache-Control"))
	}
	for _, ref := range append(refs, []string{wasmRef}) {
		if want := `"/` + strings.Trim(ref[0], `"`) + `"`; !strings.Contains(swText, want) {
			t.Errorf("sw.js does not list %s: %q", want, swText)
		}
	}
	if !strings.Contains(swText, `["/", "/web/`) {
		t.Errorf("sw.js does not list the page: %q", swText)
	}

	// Another module: another hashed name for it, for app.js that names
	// it, for the page that names app.js.
	fsys["sandi.wasm"] = &fstest.MapFile{Data: []byte("\x00asm another module")}
	delete(fsys, "sandi.wasm.gz")
	delete(fsys, "sandi.wasm.br")
	h2 := newHandler(fsys)
	page2 := string(body(t, get(h2, "/")))
	for _, m := range refs {
		if changed := !strings.Contains(page2, m[0]); changed != (m[1] == "app") {
			t.Errorf("with another module, %s changed: %v (the page: %q)", m[0], changed, page2)
		}
	}
}

// TestHashedImports: an ES module's imports ("./NAME") name the hashed
// files too, also where modules import each other in a cycle; a change to
// one module of a cycle renames every module of it, the modules that
// import them and the page; the service worker lists them all.
func TestHashedImports(t *testing.T) {
	fsys := fakeFS(true)
	fsys["index.html"] = &fstest.MapFile{Data: []byte(`<!doctype html><script type="module" src="web/app.js"></script>`)}
	fsys["app.js"] = &fstest.MapFile{Data: []byte(`import { chat } from "./chat.js"; import "./leaf.js"; chat();`)}
	fsys["chat.js"] = &fstest.MapFile{Data: []byte(`import { list } from "./list.js"; export const chat = () => list();`)}
	fsys["list.js"] = &fstest.MapFile{Data: []byte(`import { chat } from "./chat.js"; import "./leaf.js"; export const list = () => 1;`)}
	fsys["leaf.js"] = &fstest.MapFile{Data: []byte(`export const leaf = 1;`)}
	hashed := func(h *handler) map[string]string {
		out := map[string]string{}
		for _, name := range []string{"app.js", "chat.js", "list.js", "leaf.js"} {
			out[name] = h.files[name].hashed
		}
		return out
	}
	h := newHandler(fsys)
	names := hashed(h)
	imports := regexp.MustCompile(`"\./([^"]+)"`)
	for _, name := range []string{"app.js", "chat.js", "list.js"} {
		served := string(body(t, get(h, "/web/"+names[name])))
		refs := imports.FindAllStringSubmatch(served, -1)
		if len(refs) == 0 {
			t.Fatalf("%s imports nothing: %q", name, served)
		}
		for _, m := range refs {
			if r := get(h, "/web/"+m[1]); r.StatusCode != 200 || r.Header.Get("Cache-Control") != immutable {
				t.Errorf("%s imports %q: %d, Cache-Control %q", name, m[1], r.StatusCode, r.Header.Get("Cache-Control"))
			}
		}
	}
	sw := string(body(t, get(h, "/web/sw.js")))
	for name, hn := range names {
		if !strings.Contains(sw, `"/web/`+hn+`"`) {
			t.Errorf("sw.js does not list %s as %s: %q", name, hn, sw)
		}
	}

	// Another list.js: its cycle (chat.js), the module importing it
	// (app.js) and the page change; a module outside (leaf.js) does not.
	fsys["list.js"] = &fstest.MapFile{Data: []byte(`import { chat } from "./chat.js"; import "./leaf.js"; export const list = () => 2;`)}
	h2 := newHandler(fsys)
	for name, hn := range hashed(h2) {
		if changed := hn != names[name]; changed != (name != "leaf.js") {
			t.Errorf("with another list.js, %s changed: %v (%s, was %s)", name, changed, hn, names[name])
		}
	}
	if string(body(t, get(h2, "/"))) == string(body(t, get(h, "/"))) {
		t.Error("with another list.js, the page names the same files")
	}
}

// TestShippedNamesHashed: in the web client as shipped, every file the page
// and its scripts name ("web/NAME", "/web/NAME", "./NAME") is named by its
// hashed name, so the service worker's cache holds all a page loads.
func TestShippedNamesHashed(t *testing.T) {
	h := Handler().(*handler)
	ref := regexp.MustCompile(`"(?:/?web/|\./)([^"/]+)"`)
	modules := 0
	for name, f := range h.files {
		if name != f.name || name != "index.html" && path.Ext(name) != ".js" {
			continue
		}
		if strings.Contains(string(f.data), "\nimport ") {
			modules++
		}
		for _, m := range ref.FindAllStringSubmatch(string(f.data), -1) {
			if g := h.files[m[1]]; g != nil && m[1] != g.hashed && m[1] != serviceWorker {
				t.Errorf("%s names %s by its plain name", name, m[0])
			}
		}
	}
	if modules < 5 {
		t.Errorf("%d of the shipped scripts import modules: is the client still made of ES modules?", modules)
	}
	// Every module a script imports is preloaded by the page (or is its
	// script), so that the browser fetches them at once rather than import
	// after import.
	page := string(h.files["index.html"].data)
	imports := regexp.MustCompile(`from "\./([^"]+)"|import "\./([^"]+)"`)
	for name, f := range h.files {
		if name != f.name || path.Ext(name) != ".js" {
			continue
		}
		for _, m := range imports.FindAllStringSubmatch(string(f.data), -1) {
			mod := m[1] + m[2]
			if !strings.Contains(page, `<link rel="modulepreload" href="web/`+mod+`">`) && !strings.Contains(page, `<script src="web/`+mod+`" type="module">`) {
				t.Errorf("%s imports %s, which the page does not preload", name, mod)
			}
		}
	}
}

// maxModuleGzip bounds the gzip-compressed module, which browsers without
// brotli download. It was 1.84 MiB when written; linking net/http's
// Transport again (instead of the SDK's fetch transport) would take it to
// about 3 MiB. Archives (history transfer, backup and restore) took it from
// 2.13 to 2.20 MiB; receipts, typing and the attachment worker's mode to
// 2.25 MiB; disappearing messages, timeline lines, message requests and
// signed device names to 2.31 MiB. The SDK's own HTTP and WebSocket types
// in the browser (no net/http, net/url or WebSocket library linked) took it
// to 2.04 MiB.
const maxModuleGzip = 2150 << 10

// maxModuleBrotli bounds the module as browsers download it (brotli). It
// was 1.59 MiB when written (gzip: 2.21 MiB), 1.61 MiB with receipts and
// the attachment worker, 1.65 MiB with disappearing messages, timeline
// lines, message requests and signed device names, 1.46 MiB without
// net/http, net/url and the WebSocket library; docs/performance.md says
// what the module is made of.
const maxModuleBrotli = 1540 << 10

// notInModule are packages the module does without: each links code a
// page never runs, or runs package initialisers whose data the linker
// keeps (net/http alone brings crypto/tls, crypto/x509, mime and log).
var notInModule = []string{"net/http", "net/url", "net", "crypto/tls", "crypto/x509", "mime", "log", "github.com/coder/websocket"}

// TestModuleDeps fails when the module imports, directly or not, a package
// of notInModule.
func TestModuleDeps(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./wasm")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["sandi.dev/client"] {
		t.Fatalf("go list -deps ./wasm does not list the SDK: %q", out)
	}
	for _, p := range notInModule {
		if deps[p] {
			t.Errorf("the module links %s: `GOOS=js GOARCH=wasm go list -deps ./web/wasm` and look for who imports it", p)
		}
	}
}

// TestModuleSize fails when the generated module grows past the bounds (it
// needs `go generate ./web`, as the browser tests do).
func TestModuleSize(t *testing.T) {
	for _, c := range []struct {
		name string
		max  int64
	}{{"sandi.wasm.gz", maxModuleGzip}, {"sandi.wasm.br", maxModuleBrotli}} {
		p := filepath.Join("static", c.name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s is missing: run `go generate ./web`", p)
		}
		if fi.Size() > c.max {
			t.Errorf("%s is %d bytes, over the %d-byte bound: what made the module grow?", c.name, fi.Size(), c.max)
		}
		t.Logf("%s: %d bytes", c.name, fi.Size())
	}
}
