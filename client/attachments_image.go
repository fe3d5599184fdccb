//go:build !js

package client

import (
	"bytes"
	"image"
	"image/color"
	_ "image/gif" // image/gif thumbnails
	"image/jpeg"
	_ "image/png" // image/png thumbnails
	"io"
)

// Thumbnails of images (protocol.md §13.5) are made natively only: a
// browser makes its own with the page's decoders, and the WebAssembly
// module stays without Go's image decoders.
const (
	thumbSide      = 128      // pixels of the longer side, at most
	maxThumbPixels = 16 << 20 // larger images get no thumbnail: decoding one takes 4 bytes a pixel
)

// fillImageMeta reads a PNG, JPEG or GIF file's dimensions into m, and
// makes its thumbnail, when m has none. A file that does not decode gets
// neither; that is not an error (the file is sent as it is).
func fillImageMeta(m *AttachmentMeta, r *io.SectionReader) {
	switch m.Type {
	case "image/png", "image/jpeg", "image/gif":
	default:
		return
	}
	cfg, _, err := image.DecodeConfig(r)
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return
	}
	if m.Width == 0 && m.Height == 0 {
		m.Width, m.Height = cfg.Width, cfg.Height
	}
	if m.Thumbnail != nil || int64(cfg.Width)*int64(cfg.Height) > maxThumbPixels {
		return
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return
	}
	if img, _, err := image.Decode(r); err == nil {
		m.Thumbnail = thumbnail(img)
	}
}

// thumbnail scales img to fit thumbSide × thumbSide, each pixel the mean
// of up to 4 × 4 samples of its box, over white, and encodes it as a JPEG
// of at most MaxThumbnail bytes (nil if even the lowest quality tried is
// larger).
func thumbnail(img image.Image) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := w, h
	switch {
	case w >= h && w > thumbSide:
		tw, th = thumbSide, max(1, h*thumbSide/w)
	case h > w && h > thumbSide:
		tw, th = max(1, w*thumbSide/h), thumbSide
	}
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := range th {
		y0, y1 := b.Min.Y+y*h/th, b.Min.Y+(y+1)*h/th
		ny := min(4, y1-y0)
		for x := range tw {
			x0, x1 := b.Min.X+x*w/tw, b.Min.X+(x+1)*w/tw
			nx := min(4, x1-x0)
			var sr, sg, sb, sa uint64
			for sy := range ny {
				py := y0 + (2*sy+1)*(y1-y0)/(2*ny)
				for sx := range nx {
					px := x0 + (2*sx+1)*(x1-x0)/(2*nx)
					r, g, bl, a := img.At(px, py).RGBA()
					sr, sg, sb, sa = sr+uint64(r), sg+uint64(g), sb+uint64(bl), sa+uint64(a)
				}
			}
			n := uint64(nx * ny)
			white := (0xffff*n - sa) // premultiplied colour over white
			dst.SetRGBA(x, y, color.RGBA{uint8((sr + white) / n >> 8), uint8((sg + white) / n >> 8), uint8((sb + white) / n >> 8), 0xff})
		}
	}
	var buf bytes.Buffer
	for _, q := range []int{75, 60, 45, 30, 20} {
		buf.Reset()
		if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: q}); err != nil {
			return nil
		}
		if buf.Len() <= MaxThumbnail {
			return bytes.Clone(buf.Bytes())
		}
	}
	return nil
}
