package qr

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// render draws a code with a four-module quiet zone, scale pixels a module.
func render(c *Code, scale int) image.Image {
	n := (c.Size + 8) * scale
	img := image.NewGray(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			mx, my := x/scale-4, y/scale-4
			v := color.Gray{Y: 255}
			if mx >= 0 && my >= 0 && mx < c.Size && my < c.Size && c.Dark(mx, my) {
				v = color.Gray{Y: 0}
			}
			img.SetGray(x, y, v)
		}
	}
	return img
}

// decode reads a code back with an independent decoder (ZXing's Go port)
// and returns its byte segments and level.
func decode(t *testing.T, c *Code) ([]byte, string) {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(render(c, 4))
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("version %d mask %d: the decoder cannot read it: %v", c.Version, c.Mask, err)
	}
	var out []byte
	if segs, ok := res.GetResultMetadata()[gozxing.ResultMetadataType_BYTE_SEGMENTS].([][]byte); ok {
		for _, s := range segs {
			out = append(out, s...)
		}
	}
	lvl, _ := res.GetResultMetadata()[gozxing.ResultMetadataType_ERROR_CORRECTION_LEVEL].(string)
	return out, lvl
}

func payload(n int, seed byte) []byte {
	var out []byte
	for i := byte(0); len(out) < n; i++ {
		h := sha256.Sum256([]byte{seed, i})
		out = append(out, h[:]...)
	}
	return out[:n]
}

// TestDecodes encodes payloads of every length up to the capacity of both
// levels and checks that an independent decoder returns them exactly.
func TestDecodes(t *testing.T) {
	for _, tc := range []struct {
		lvl  Level
		name string
		max  int
	}{{L, "L", 134}, {M, "M", 106}} {
		versions := map[int]bool{}
		masks := map[int]bool{}
		for n := 1; n <= tc.max; n++ {
			data := payload(n, byte(n))
			c, err := Encode(data, tc.lvl)
			if err != nil {
				t.Fatalf("level %s, %d bytes: %v", tc.name, n, err)
			}
			if c.Size != 17+4*c.Version || len(c.Modules) != c.Size*c.Size {
				t.Fatalf("version %d has size %d and %d modules", c.Version, c.Size, len(c.Modules))
			}
			versions[c.Version] = true
			masks[c.Mask] = true
			got, lvl := decode(t, c)
			if !bytes.Equal(got, data) {
				t.Fatalf("level %s, %d bytes (version %d, mask %d): decoded %x, want %x", tc.name, n, c.Version, c.Mask, got, data)
			}
			if lvl != tc.name {
				t.Fatalf("level %s, %d bytes: decoder read level %q", tc.name, n, lvl)
			}
		}
		if len(versions) != MaxVersion {
			t.Errorf("level %s: used versions %v, want all of 1–%d", tc.name, versions, MaxVersion)
		}
		if len(masks) < 4 {
			t.Errorf("level %s: only masks %v were ever chosen; the penalty looks broken", tc.name, masks)
		}
	}
}

// TestSafetyPayload pins the shape of the safety-number code the web client
// draws: 65 bytes at level M is version 5 (37×37 modules).
func TestSafetyPayload(t *testing.T) {
	data := payload(65, 7)
	c, err := Encode(data, M)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 5 || c.Size != 37 {
		t.Fatalf("65 bytes at M: version %d size %d, want 5 and 37", c.Version, c.Size)
	}
	if got, _ := decode(t, c); !bytes.Equal(got, data) {
		t.Fatalf("decoded %x", got)
	}
}

// TestEveryMaskDecodes forces each of the eight masks, so a wrong mask
// formula cannot hide behind the penalty choosing another one.
func TestEveryMaskDecodes(t *testing.T) {
	data := payload(40, 3)
	sp := specs[3-1][M]
	for mask := range 8 {
		c := buildWithMask(3, M, sp, data, mask)
		if got, _ := decode(t, c); !bytes.Equal(got, data) {
			t.Errorf("mask %d: decoded %x", mask, got)
		}
	}
}

func buildWithMask(version int, lvl Level, sp blockSpec, data []byte, mask int) *Code {
	c := build(version, lvl, sp, data)
	g := &grid{size: c.Size, dark: c.Modules, function: make([]bool, c.Size*c.Size)}
	// Rebuild the function map to undo the chosen mask and apply another.
	f := newGrid(c.Size)
	f.drawFunctionPatterns(version, sp.aligned)
	g.function = f.function
	g.applyMask(c.Mask)
	g.applyMask(mask)
	g.drawFormat(lvl, mask)
	return &Code{Version: version, Size: c.Size, Mask: mask, Modules: g.dark}
}

func TestTooLong(t *testing.T) {
	if _, err := Encode(make([]byte, 135), L); err != ErrTooLong {
		t.Errorf("135 bytes at L: %v, want ErrTooLong", err)
	}
	if _, err := Encode(make([]byte, 107), M); err != ErrTooLong {
		t.Errorf("107 bytes at M: %v, want ErrTooLong", err)
	}
	if _, err := Encode([]byte("x"), Level(7)); err == nil {
		t.Error("an unknown level was accepted")
	}
}

func TestReedSolomonKnownAnswer(t *testing.T) {
	// The worked example of ISO/IEC 18004 Annex I: "01234567" at 1-M has
	// these 16 data codewords and 10 error-correction codewords.
	data := []byte{0x10, 0x20, 0x0C, 0x56, 0x61, 0x80, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11}
	want := []byte{0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55}
	if got := rsRemainder(data, rsGenerator(10)); !bytes.Equal(got, want) {
		t.Errorf("got % X\nwant % X", got, want)
	}
}

func ExampleEncode() {
	c, _ := Encode([]byte("sandi"), M)
	fmt.Println(c.Version, c.Size)
	// Output: 1 21
}
