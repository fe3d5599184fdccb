// Package qr encodes bytes as a QR code (ISO/IEC 18004) for the web
// client's safety-number and device-link views. It is deliberately small:
// byte mode only, error-correction levels L and M, versions 1 to 6 (up to
// 134 bytes at L, 106 at M), which covers the 65-byte safety payload
// (protocol.SafetyNumber) at level M in version 5. It keeps nothing: a QR
// code is only a drawing of what the page also shows as text (a safety
// number, or a link code, which is secret but already on the screen).
package qr

import (
	"errors"
	"fmt"
)

// Level is an error-correction level.
type Level int

// The supported levels: L recovers about 7 % of the codewords, M about 15 %.
const (
	L Level = iota
	M
)

// formatBits are the two level bits of the format information (§7.9.1).
func (l Level) formatBits() int {
	if l == L {
		return 1
	}
	return 0
}

// blockSpec is the block structure of one version at one level: every
// block of versions 1 to 6 at L and M has the same length (§7.5.1, table 9).
type blockSpec struct {
	blocks  int // number of blocks
	data    int // data codewords per block
	ecc     int // error-correction codewords per block
	aligned int // centre of the one alignment pattern (0: none)
}

// specs[version-1][level].
var specs = [6][2]blockSpec{
	{{1, 19, 7, 0}, {1, 16, 10, 0}},
	{{1, 34, 10, 18}, {1, 28, 16, 18}},
	{{1, 55, 15, 22}, {1, 44, 26, 22}},
	{{1, 80, 20, 26}, {2, 32, 18, 26}},
	{{1, 108, 26, 30}, {2, 43, 24, 30}},
	{{2, 68, 18, 34}, {4, 27, 16, 34}},
}

// MaxVersion is the largest version Encode makes.
const MaxVersion = len(specs)

// ErrTooLong reports data that does not fit version MaxVersion.
var ErrTooLong = errors.New("qr: data too long")

// Code is an encoded symbol: Size×Size modules, row by row, true = dark.
// It has no quiet zone; draw at least four light modules around it.
type Code struct {
	Version int
	Size    int
	Mask    int
	Modules []bool
}

// Dark reports whether the module in column x, row y is dark.
func (c *Code) Dark(x, y int) bool { return c.Modules[y*c.Size+x] }

// Encode encodes data in byte mode at level lvl, in the smallest version
// that holds it, with the mask of lowest penalty (§7.8.3).
func Encode(data []byte, lvl Level) (*Code, error) {
	if lvl != L && lvl != M {
		return nil, fmt.Errorf("qr: unsupported level %d", lvl)
	}
	// Byte mode, versions 1–9: 4-bit mode, 8-bit count, 8 bits a byte.
	need := 4 + 8 + 8*len(data)
	for v := 1; v <= MaxVersion; v++ {
		sp := specs[v-1][lvl]
		if need <= 8*sp.blocks*sp.data && len(data) <= 255 {
			return build(v, lvl, sp, data), nil
		}
	}
	return nil, ErrTooLong
}

func build(version int, lvl Level, sp blockSpec, data []byte) *Code {
	capacity := sp.blocks * sp.data
	var bits bitWriter
	bits.put(0b0100, 4) // byte mode
	bits.put(len(data), 8)
	for _, b := range data {
		bits.put(int(b), 8)
	}
	bits.put(0, min(4, 8*capacity-bits.n)) // terminator
	bits.put(0, (8-bits.n%8)%8)
	for pad := 0xEC; len(bits.buf) < capacity; pad ^= 0xEC ^ 0x11 {
		bits.put(pad, 8)
	}
	codewords := interleave(bits.buf, sp)

	size := 17 + 4*version
	g := newGrid(size)
	g.drawFunctionPatterns(version, sp.aligned)
	g.placeData(codewords)
	best, bestPenalty := 0, -1
	for mask := range 8 {
		g.applyMask(mask)
		g.drawFormat(lvl, mask)
		if p := g.penalty(); bestPenalty < 0 || p < bestPenalty {
			best, bestPenalty = mask, p
		}
		g.applyMask(mask) // masking is its own inverse
	}
	g.applyMask(best)
	g.drawFormat(lvl, best)
	return &Code{Version: version, Size: size, Mask: best, Modules: g.dark}
}

type bitWriter struct {
	buf []byte
	n   int // bits written
}

func (w *bitWriter) put(v, n int) {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		if v>>i&1 == 1 {
			w.buf[len(w.buf)-1] |= 0x80 >> (w.n % 8)
		}
		w.n++
	}
}

// interleave splits the data codewords into blocks, appends each block's
// Reed–Solomon codewords and interleaves them (§7.6).
func interleave(data []byte, sp blockSpec) []byte {
	gen := rsGenerator(sp.ecc)
	blocks := make([][]byte, sp.blocks)
	eccs := make([][]byte, sp.blocks)
	for i := range blocks {
		blocks[i] = data[i*sp.data : (i+1)*sp.data]
		eccs[i] = rsRemainder(blocks[i], gen)
	}
	out := make([]byte, 0, sp.blocks*(sp.data+sp.ecc))
	for j := range sp.data {
		for i := range blocks {
			out = append(out, blocks[i][j])
		}
	}
	for j := range sp.ecc {
		for i := range eccs {
			out = append(out, eccs[i][j])
		}
	}
	return out
}

// gfMul multiplies in GF(2^8) with the QR polynomial x^8+x^4+x^3+x^2+1.
func gfMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		carry := a & 0x80
		a <<= 1
		if carry != 0 {
			a ^= 0x1D
		}
		b >>= 1
	}
	return p
}

// rsGenerator returns the coefficients (highest degree first, the leading
// 1 omitted) of (x-α^0)(x-α^1)…(x-α^(n-1)), α = 2.
func rsGenerator(n int) []byte {
	g := make([]byte, n)
	g[n-1] = 1 // the polynomial 1, stored right-aligned
	root := byte(1)
	for range n {
		// Multiply by (x - root): shift left and add root times g.
		for j := range n {
			g[j] = gfMul(g[j], root)
			if j+1 < n {
				g[j] ^= g[j+1]
			}
		}
		root = gfMul(root, 2)
	}
	return g
}

// rsRemainder returns data·x^n mod the generator (n = len(gen)).
func rsRemainder(data, gen []byte) []byte {
	rem := make([]byte, len(gen))
	for _, b := range data {
		factor := b ^ rem[0]
		copy(rem, rem[1:])
		rem[len(rem)-1] = 0
		for i, c := range gen {
			rem[i] ^= gfMul(c, factor)
		}
	}
	return rem
}

// grid is a symbol under construction.
type grid struct {
	size     int
	dark     []bool
	function []bool // modules that are not data (patterns, format)
}

func newGrid(size int) *grid {
	return &grid{size: size, dark: make([]bool, size*size), function: make([]bool, size*size)}
}

func (g *grid) set(x, y int, dark bool) {
	g.dark[y*g.size+x] = dark
	g.function[y*g.size+x] = true
}

func (g *grid) drawFunctionPatterns(version, aligned int) {
	n := g.size
	// Timing patterns (row and column 6).
	for i := range n {
		g.set(6, i, i%2 == 0)
		g.set(i, 6, i%2 == 0)
	}
	// Finder patterns with their separators, at three corners.
	for _, c := range [][2]int{{3, 3}, {n - 4, 3}, {3, n - 4}} {
		for dy := -4; dy <= 4; dy++ {
			for dx := -4; dx <= 4; dx++ {
				x, y := c[0]+dx, c[1]+dy
				if x < 0 || y < 0 || x >= n || y >= n {
					continue
				}
				d := max(abs(dx), abs(dy))
				g.set(x, y, d != 2 && d != 4)
			}
		}
	}
	// The one alignment pattern of versions 2–6.
	if aligned != 0 {
		for dy := -2; dy <= 2; dy++ {
			for dx := -2; dx <= 2; dx++ {
				g.set(aligned+dx, aligned+dy, max(abs(dx), abs(dy)) != 1)
			}
		}
	}
	// Reserve the format areas (drawn per mask) and the dark module.
	g.drawFormat(L, 0)
}

// drawFormat draws the 15-bit format information twice (§7.9) and the
// module that is always dark.
func (g *grid) drawFormat(lvl Level, mask int) {
	data := lvl.formatBits()<<3 | mask
	rem := data
	for range 10 {
		rem = rem<<1 ^ (rem>>9)*0x537
	}
	bits := (data<<10 | rem) ^ 0x5412
	bit := func(i int) bool { return bits>>i&1 == 1 }
	n := g.size
	for i := 0; i <= 5; i++ {
		g.set(8, i, bit(i))
	}
	g.set(8, 7, bit(6))
	g.set(8, 8, bit(7))
	g.set(7, 8, bit(8))
	for i := 9; i < 15; i++ {
		g.set(14-i, 8, bit(i))
	}
	for i := range 8 {
		g.set(n-1-i, 8, bit(i))
	}
	for i := 8; i < 15; i++ {
		g.set(8, n-15+i, bit(i))
	}
	g.set(8, n-8, true)
}

// placeData fills the data modules in the zigzag order of §7.7.3, two
// columns at a time from the right, skipping the vertical timing pattern.
// Remainder modules stay light.
func (g *grid) placeData(codewords []byte) {
	n := g.size
	i := 0
	for right := n - 1; right >= 1; right -= 2 {
		if right == 6 {
			right = 5
		}
		upward := (right+1)&2 == 0
		for v := range n {
			y := v
			if upward {
				y = n - 1 - v
			}
			for j := range 2 {
				x := right - j
				if g.function[y*n+x] || i >= 8*len(codewords) {
					continue
				}
				g.dark[y*n+x] = codewords[i/8]>>(7-i%8)&1 == 1
				i++
			}
		}
	}
}

func (g *grid) applyMask(mask int) {
	n := g.size
	for y := range n {
		for x := range n {
			if g.function[y*n+x] {
				continue
			}
			var flip bool
			switch mask {
			case 0:
				flip = (x+y)%2 == 0
			case 1:
				flip = y%2 == 0
			case 2:
				flip = x%3 == 0
			case 3:
				flip = (x+y)%3 == 0
			case 4:
				flip = (x/3+y/2)%2 == 0
			case 5:
				flip = x*y%2+x*y%3 == 0
			case 6:
				flip = (x*y%2+x*y%3)%2 == 0
			case 7:
				flip = ((x+y)%2+x*y%3)%2 == 0
			}
			if flip {
				g.dark[y*n+x] = !g.dark[y*n+x]
			}
		}
	}
}

// penalty scores a masked symbol by the four rules of §7.8.3.
func (g *grid) penalty() int {
	n := g.size
	at := func(x, y int, transpose bool) bool {
		if transpose {
			x, y = y, x
		}
		return g.dark[y*n+x]
	}
	p := 0
	finder := []bool{true, false, true, true, true, false, true}
	for _, tr := range []bool{false, true} {
		for y := range n {
			// Rule 1: runs of five or more modules of one colour.
			run := 1
			for x := 1; x <= n; x++ {
				if x < n && at(x, y, tr) == at(x-1, y, tr) {
					run++
					continue
				}
				if run >= 5 {
					p += 3 + run - 5
				}
				run = 1
			}
			// Rule 3: 1:1:3:1:1 finder-like patterns with four light
			// modules on one side (outside the symbol counts as light).
			for x := 0; x+7 <= n; x++ {
				match := true
				for k, d := range finder {
					if at(x+k, y, tr) != d {
						match = false
						break
					}
				}
				if !match {
					continue
				}
				lightBefore, lightAfter := true, true
				for k := 1; k <= 4; k++ {
					if x-k >= 0 && at(x-k, y, tr) {
						lightBefore = false
					}
					if x+6+k < n && at(x+6+k, y, tr) {
						lightAfter = false
					}
				}
				if lightBefore || lightAfter {
					p += 40
				}
			}
		}
	}
	// Rule 2: 2×2 blocks of one colour.
	for y := 0; y+1 < n; y++ {
		for x := 0; x+1 < n; x++ {
			c := g.dark[y*n+x]
			if g.dark[y*n+x+1] == c && g.dark[(y+1)*n+x] == c && g.dark[(y+1)*n+x+1] == c {
				p += 3
			}
		}
	}
	// Rule 4: the share of dark modules away from 50 %, in steps of 5 %.
	dark := 0
	for _, d := range g.dark {
		if d {
			dark++
		}
	}
	p += 10 * (abs(dark*100/(n*n)-50) / 5)
	return p
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
