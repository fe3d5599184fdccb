//go:build !js

package client

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"testing"
)

// TestThumbnail: a PNG of 1000 × 600 noisy pixels (which compresses
// badly) gets its dimensions and a JPEG thumbnail of 128 × 76 of at most
// 8 KiB; a file that does not decode, or of another type, gets neither.
func TestThumbnail(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 1000, 600))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.UintN(256))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	r := func(b []byte) *io.SectionReader { return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b))) }
	m := AttachmentMeta{Name: "noise.png", Type: "image/png"}
	fillImageMeta(&m, r(buf.Bytes()))
	if m.Width != 1000 || m.Height != 600 || len(m.Thumbnail) == 0 || len(m.Thumbnail) > MaxThumbnail {
		t.Fatalf("%d×%d, thumbnail of %d bytes", m.Width, m.Height, len(m.Thumbnail))
	}
	th, err := jpeg.Decode(bytes.NewReader(m.Thumbnail))
	if err != nil || th.Bounds().Dx() != 128 || th.Bounds().Dy() != 76 {
		t.Fatalf("thumbnail: %v, %v", err, th.Bounds())
	}
	// A tall transparent image: 128 high, over white.
	tall := image.NewNRGBA(image.Rect(0, 0, 30, 300))
	buf.Reset()
	png.Encode(&buf, tall)
	m = AttachmentMeta{Name: "t.png", Type: "image/png"}
	fillImageMeta(&m, r(buf.Bytes()))
	th, err = jpeg.Decode(bytes.NewReader(m.Thumbnail))
	if err != nil || th.Bounds().Dx() != 12 || th.Bounds().Dy() != 128 {
		t.Fatalf("tall thumbnail: %v, %v", err, th.Bounds())
	}
	if c := color.RGBAModel.Convert(th.At(5, 60)).(color.RGBA); c.R < 240 || c.G < 240 || c.B < 240 {
		t.Fatalf("transparent pixels became %v, not white", c)
	}
	for _, c := range []AttachmentMeta{{Type: "image/png"}, {Type: "application/octet-stream"}} {
		b := []byte("not an image at all")
		if c.Type != "image/png" {
			b = buf.Bytes() // a PNG, but not said to be an image
		}
		fillImageMeta(&c, r(b))
		if c.Width != 0 || c.Thumbnail != nil {
			t.Fatalf("%s: %d×%d, thumbnail %d bytes", c.Type, c.Width, c.Height, len(c.Thumbnail))
		}
	}
}
