// Command wasmsize tells what a WebAssembly module built by Go is made of:
// the bytes of code of each package, summed over the function bodies of
// the code section and named by the name section (so the module must be
// built without -ldflags=-s -w), largest first, and with -top N the N
// largest functions. docs/performance.md ("Tenth round: module size")
// shows its use:
//
//	GOOS=js GOARCH=wasm go build -trimpath -o /tmp/sandi.wasm ./web/wasm
//	go run ./web/internal/wasmsize /tmp/sandi.wasm
//
// The data section (type descriptors, the function tables the runtime
// walks, strings) is not attributed: it follows the code.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

func main() {
	top := flag.Int("top", 0, "also list the `N` largest functions")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: wasmsize [-top N] FILE.wasm")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *top); err != nil {
		fmt.Fprintln(os.Stderr, "wasmsize:", err)
		os.Exit(1)
	}
}

type fn struct {
	name string
	size int
}

var errShort = errors.New("truncated module")

// reader reads a module's LEB128 numbers and byte strings.
type reader struct {
	b   []byte
	err error
}

func (r *reader) num() int {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > 1<<31 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

func (r *reader) bytes(n int) []byte {
	if n > len(r.b) {
		r.fail()
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) byte() byte {
	if p := r.bytes(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
	r.b = nil
}

// functions returns the module's function bodies with their names.
func functions(module []byte) ([]fn, error) {
	if len(module) < 8 || string(module[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module")
	}
	r := &reader{b: module[8:]}
	imported := 0
	var sizes []int
	names := map[int]string{}
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		s := &reader{b: r.bytes(r.num())}
		switch id {
		case 2: // imports: functions among them take the first indices
			for n := s.num(); n > 0 && s.err == nil; n-- {
				s.bytes(s.num())
				s.bytes(s.num())
				switch s.byte() {
				case 0: // function
					s.num()
					imported++
				case 1: // table
					s.byte()
					if s.byte()&1 != 0 {
						s.num()
					}
					s.num()
				case 2: // memory
					if s.byte()&1 != 0 {
						s.num()
					}
					s.num()
				case 3: // global
					s.bytes(2)
				}
			}
		case 10: // code
			for n := s.num(); n > 0 && s.err == nil; n-- {
				size := s.num()
				s.bytes(size)
				sizes = append(sizes, size)
			}
		case 0: // custom: the name section's function names
			if string(s.bytes(s.num())) != "name" {
				continue
			}
			for len(s.b) > 0 && s.err == nil {
				sub := s.byte()
				ss := &reader{b: s.bytes(s.num())}
				if sub != 1 {
					continue
				}
				for n := ss.num(); n > 0 && ss.err == nil; n-- {
					i := ss.num()
					names[i] = string(ss.bytes(ss.num()))
				}
				if ss.err != nil {
					return nil, ss.err
				}
			}
		}
		if s.err != nil {
			return nil, s.err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(names) == 0 {
		return nil, errors.New("no function names: build the module without -ldflags=-s")
	}
	out := make([]fn, len(sizes))
	for i, size := range sizes {
		out[i] = fn{names[imported+i], size}
	}
	return out, nil
}

// pkg is the package of a function as the name section spells it: the
// import path with '/' written '_', then '.' and the function.
func pkg(name string) string {
	host := ""
	for _, h := range []string{"sandi.dev_", "github.com_", "golang.org_", "filippo.io_", "vendor_golang.org_"} {
		if strings.HasPrefix(name, h) {
			host, name = h, name[len(h):]
			break
		}
	}
	if i := strings.IndexAny(name, ".["); i >= 0 {
		name = name[:i]
	}
	return host + name
}

func run(file string, top int) error {
	module, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	fns, err := functions(module)
	if err != nil {
		return err
	}
	per := map[string]int{}
	total := 0
	for _, f := range fns {
		per[pkg(f.name)] += f.size
		total += f.size
	}
	pkgs := make([]string, 0, len(per))
	for p := range per {
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool {
		return per[pkgs[i]] > per[pkgs[j]] || per[pkgs[i]] == per[pkgs[j]] && pkgs[i] < pkgs[j]
	})
	fmt.Printf("%s: %d bytes, %d of code in %d functions\n", file, len(module), total, len(fns))
	for _, p := range pkgs {
		fmt.Printf("%9d  %5.1f%%  %s\n", per[p], 100*float64(per[p])/float64(total), p)
	}
	if top > 0 {
		sort.Slice(fns, func(i, j int) bool { return fns[i].size > fns[j].size })
		fmt.Println()
		for _, f := range fns[:min(top, len(fns))] {
			fmt.Printf("%9d  %s\n", f.size, f.name)
		}
	}
	return nil
}
