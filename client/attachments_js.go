//go:build js

package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall/js"

	"sandi.dev/protocol"
)

// blobRange is the size of one ranged GET of a download: fetch holds an
// answer's whole body in memory.
const blobRange = 8 << 20

// blobSpool is a spool in the page's memory, as a JavaScript Blob (which
// the browser keeps on disk when it is large), not in the module's: the
// module's memory grows and never shrinks, and would hold the largest
// attachment ever downloaded (and, growing by doubling, up to three times
// it). Writes are gathered in pieces of spoolPiece bytes; reads take a
// piece at a time with Blob.slice().arrayBuffer(), which gives the page
// its event loop back between pieces; a download's writes (and the digest
// computed beside them) let the page draw every 10 ms.
type blobSpool struct {
	parts js.Value // Array of the Blob and Uint8Arrays written, in order
	size  int64    // bytes written, buf included
	buf   []byte   // written, not yet in parts
	off   int64    // read position
	rest  []byte   // read, not yet returned
	rbuf  []byte
	busy  Busy
}

const spoolPiece = 1 << 20

func newBlobSpool() *blobSpool { return &blobSpool{parts: js.Global().Get("Array").New()} }

func (s *blobSpool) Write(p []byte) (int, error) {
	if s.off != s.size || len(s.rest) > 0 {
		return 0, errors.New("blobSpool: writes only append")
	}
	s.busy.Check(context.Background())
	n := len(p)
	for len(p) > 0 {
		if s.buf == nil {
			s.buf = make([]byte, 0, spoolPiece)
		}
		k := copy(s.buf[len(s.buf):cap(s.buf)], p)
		s.buf, p = s.buf[:len(s.buf)+k], p[k:]
		if len(s.buf) == cap(s.buf) {
			s.flush()
		}
	}
	s.size += int64(n)
	s.off = s.size
	return n, nil
}

// flush moves buf into parts.
func (s *blobSpool) flush() {
	if len(s.buf) > 0 {
		s.parts.Call("push", jsBytes(s.buf))
		s.buf = s.buf[:0]
	}
}

// blob is everything written, as one Blob (which then replaces parts).
func (s *blobSpool) blob() js.Value {
	s.flush()
	if s.parts.Length() == 1 && s.parts.Index(0).InstanceOf(js.Global().Get("Blob")) {
		return s.parts.Index(0)
	}
	b := js.Global().Get("Blob").New(s.parts)
	s.parts = js.Global().Get("Array").New()
	s.parts.Call("push", b)
	return b
}

func (s *blobSpool) Read(p []byte) (int, error) {
	if len(s.rest) == 0 {
		if s.off >= s.size {
			return 0, io.EOF
		}
		end := min(s.off+spoolPiece, s.size)
		ab, err := awaitPromise(context.Background(), js.Null(), s.blob().Call("slice", float64(s.off), float64(end)).Call("arrayBuffer"))
		if err != nil {
			return 0, fmt.Errorf("read the download's spool: %w", err)
		}
		if s.rbuf == nil {
			s.rbuf = make([]byte, spoolPiece)
		}
		s.rest = s.rbuf[:ab.Get("byteLength").Int()]
		js.CopyBytesToGo(s.rest, js.Global().Get("Uint8Array").New(ab))
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	s.off += int64(n)
	return n, nil
}

func (s *blobSpool) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekStart || off < 0 || off > s.size {
		return 0, errors.New("blobSpool: bad seek")
	}
	s.off, s.rest = off, nil
	return off, nil
}

func (s *blobSpool) Truncate(n int64) error {
	if n < 0 || n > s.size {
		return errors.New("blobSpool: bad truncate")
	}
	if n < s.size {
		b := s.blob().Call("slice", 0, float64(n))
		s.parts = js.Global().Get("Array").New()
		s.parts.Call("push", b)
		s.size = n
	}
	s.off, s.rest = n, nil
	return nil
}

func (s *blobSpool) Close() error { return nil }

func (s *blobSpool) Remove() error {
	s.parts = js.Global().Get("Array").New()
	s.buf, s.rest, s.size, s.off = nil, nil, 0, 0
	return nil
}

// openSpool returns an empty spool in the page's memory: a page does not
// resume a download across reloads.
func (c *Client) openSpool(string) (spool, int64, error) { return newBlobSpool(), 0, nil }

// fillImageMeta makes no thumbnail in a browser: the page does, with its
// own image decoders, and the module stays small.
func fillImageMeta(*AttachmentMeta, *io.SectionReader) {}

// An Opener checks and decrypts an attachment's downloaded ciphertext
// elsewhere than on the page's thread (a browser's worker): given the
// ciphertext as a Blob, it compares its SHA-256 digest with att.Digest
// and, only if they are equal, decrypts it with att.Key (as
// DecryptAttachment does) and returns the plaintext as a Blob. A digest
// that is not att's is ErrServerMisbehaved from the opener (wrapped or
// not); a ciphertext that does not decrypt, ErrAttachmentCorrupt.
type Opener func(ctx context.Context, ciphertext js.Value, att Attachment) (js.Value, error)

// DownloadOpened is DownloadAttachment for a page whose worker checks and
// decrypts (open): the ciphertext is fetched here, in ranges, into a Blob
// that open is given. A digest mismatch open reports is the server's
// fault, raised here as DownloadAttachment raises it.
func (c *Client) DownloadOpened(ctx context.Context, conv protocol.ConversationID, att Attachment, open Opener, progress func(done, total int64)) (js.Value, error) {
	sp, err := c.fetchBlob(ctx, conv, att, false, progress)
	if err != nil {
		return js.Value{}, err
	}
	defer sp.Close()
	defer sp.Remove()
	v, err := open(ctx, sp.(*blobSpool).blob(), att)
	if errors.Is(err, ErrServerMisbehaved) {
		return js.Value{}, c.blobFault(conv, att, errBlobDigest)
	}
	return v, err
}
