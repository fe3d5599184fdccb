// Command brotli writes FILE.br, FILE compressed with brotli at the best
// quality and a 16 MiB window, for `go generate ./web` (web/gen.go): the
// server sends the precompressed copy to browsers that accept br. It runs
// at generate time only; no server or client links the encoder.
package main

import (
	"fmt"
	"os"

	"github.com/andybalholm/brotli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: brotli FILE (writes FILE.br)")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "brotli:", err)
		os.Exit(1)
	}
}

func run(name string) error {
	raw, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	tmp := name + ".br.tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	bw := brotli.NewWriterOptions(out, brotli.WriterOptions{Quality: brotli.BestCompression, LGWin: 24})
	if _, err := bw.Write(raw); err != nil {
		out.Close()
		return err
	}
	if err := bw.Close(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name+".br")
}
