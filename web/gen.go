//go:build ignore

// gen builds the web client's WebAssembly module: `go generate ./web` runs
// it in this directory. It writes static/sandi.wasm (GOOS=js GOARCH=wasm,
// -trimpath, symbols and DWARF stripped), static/sandi.wasm.br (brotli at
// the best quality, by ./internal/brotli, served to browsers that accept
// it: about a third smaller than gzip), static/sandi.wasm.gz (gzip at the
// best compression, for the others) and static/wasm_exec.js (Go's loader, from the Go installation that builds
// the module, so the two always match).
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "web/gen:", err)
		os.Exit(1)
	}
}

func run() error {
	wasm := filepath.Join("static", "sandi.wasm")
	tmp := wasm + ".tmp"
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, "./wasm")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("build the module: %w", err)
	}
	raw, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(wasm+".gz", gz.Bytes(), 0o644); err != nil {
		return err
	}
	// Brotli at its best quality takes most of a minute: skipped when the
	// module did not change and its copy is there.
	old, _ := os.ReadFile(wasm)
	_, brErr := os.Stat(wasm + ".br")
	if err := os.Rename(tmp, wasm); err != nil {
		return err
	}
	if !bytes.Equal(old, raw) || brErr != nil {
		br := exec.Command("go", "run", "./internal/brotli", wasm)
		br.Stdout, br.Stderr = os.Stdout, os.Stderr
		if err := br.Run(); err != nil {
			os.Remove(wasm + ".br")
			return fmt.Errorf("brotli: %w", err)
		}
	}
	brInfo, err := os.Stat(wasm + ".br")
	if err != nil {
		return err
	}

	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	loader, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return fmt.Errorf("Go's wasm_exec.js: %w", err)
	}
	if err := os.WriteFile(filepath.Join("static", "wasm_exec.js"), loader, 0o644); err != nil {
		return err
	}
	fmt.Printf("web: static/sandi.wasm %d bytes (%.2f MiB), gzip %d bytes (%.2f MiB), brotli %d bytes (%.2f MiB)\n",
		len(raw), float64(len(raw))/(1<<20), gz.Len(), float64(gz.Len())/(1<<20), brInfo.Size(), float64(brInfo.Size())/(1<<20))
	return nil
}
