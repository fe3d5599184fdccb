package secret

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"sandi.dev/protocol"
	"sandi.dev/protocol/attach"
)

// ---- attach.json ----

const vecAttachDescription = `Attachment encryption (protocol.md §13). All byte strings hex. ` +
	`The plaintext of a vector is plaintext_length bytes, byte i being i mod 251 (given in full as plaintext when it is at most 1024 bytes). ` +
	`header = version 0x01 || chunk size 65536 (u32, big-endian) = 0100010000. ` +
	`payload_key = HKDF-SHA256(key, "sandi v1 attachment key" || header, 32): HKDF-Extract with no salt (32 zero bytes), then HKDF-Expand with that info. ` +
	`associated_data = "sandi v1 attachment chunk" || header, the same for every chunk. ` +
	`The plaintext is cut into chunks of 65536 bytes; the last chunk holds the 0 to 65535 bytes left (a file of a multiple of 65536 bytes, the empty file included, ends with an empty chunk). ` +
	`Chunk i (from 0) is ChaCha20-Poly1305 (RFC 8439) of its plaintext under payload_key with nonce = 3 zero bytes || i (u64, big-endian) || 0x01 for the last chunk, 0x00 otherwise, and associated_data: its ciphertext and the 16-byte tag. ` +
	`The ciphertext is header || chunk 0 || chunk 1 || …, of ciphertext_length = 5 + n + 16 × (floor(n / 65536) + 1) bytes; digest = SHA-256 of it all. ` +
	`Each chunk lists its nonce, its plaintext length, its tag (its last 16 bytes) and the SHA-256 of its whole sealed bytes; ciphertext is given in full when it is at most 2048 bytes. ` +
	`refused lists ciphertexts a reader MUST refuse: the concatenation of the byte ranges [start, end) of the named vector's ciphertext, then the bytes append, with the byte at flip (if given) XORed with 0x01 after that. ` +
	`error says why: "header" (not this version's header), "truncated" (the stream ends before its last chunk: at a chunk boundary or within a tag's length of one, or inside the header), ` +
	`or "chunk N": chunk N does not decrypt (with N chunks decrypted before it, of which a reader may have released the plaintext). Every value here is implementation-independent.`

type vecAttachFile struct {
	vecHeader
	Vectors []vecAttach        `json:"vectors"`
	Refused []vecAttachRefused `json:"refused"`
}

func (f *vecAttachFile) sizes() map[string]int {
	return map[string]int{"vectors": len(f.Vectors), "refused": len(f.Refused)}
}

type vecAttach struct {
	Name             string           `json:"name"`
	Key              vecHex           `json:"key"`
	PlaintextLength  int              `json:"plaintext_length"`
	Plaintext        vecHex           `json:"plaintext,omitempty"`
	Header           vecHex           `json:"header"`
	PayloadKey       vecHex           `json:"payload_key"`
	AssociatedData   vecHex           `json:"associated_data"`
	Chunks           []vecAttachChunk `json:"chunks"`
	CiphertextLength int              `json:"ciphertext_length"`
	Ciphertext       vecHex           `json:"ciphertext,omitempty"`
	Digest           vecHex           `json:"digest"`
}

type vecAttachChunk struct {
	Index           uint64 `json:"index"`
	Last            bool   `json:"last"`
	Nonce           vecHex `json:"nonce"`
	PlaintextLength int    `json:"plaintext_length"`
	Tag             vecHex `json:"tag"`
	SealedSHA256    vecHex `json:"sealed_sha256"`
}

type vecAttachRefused struct {
	Vector string   `json:"vector"`
	Change string   `json:"change"`
	Ranges [][2]int `json:"ranges"`
	Append vecHex   `json:"append,omitempty"`
	Flip   *int     `json:"flip,omitempty"`
	Error  string   `json:"error"`
}

func vecAttachPlaintext(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// vecAttachSeal encrypts pt under key as §13 says, written from the
// specification rather than with package attach.
func vecAttachSeal(key, pt []byte) (v vecAttach, ct []byte, err error) {
	header := []byte{1, 0, 1, 0, 0}
	pk, err := hkdf.Key(sha256.New, key, nil, protocol.LabelAttachmentKey+string(header), 32)
	if err != nil {
		return v, nil, err
	}
	aead, err := chacha20poly1305.New(pk)
	if err != nil {
		return v, nil, err
	}
	ad := append([]byte(protocol.LabelAttachmentChunk), header...)
	v = vecAttach{Key: key, PlaintextLength: len(pt), Header: header, PayloadKey: pk, AssociatedData: ad}
	ct = bytes.Clone(header)
	for i := uint64(0); ; i++ {
		n := min(len(pt), 65536)
		last := n < 65536
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:], i)
		if last {
			nonce[11] = 1
		}
		sealed := aead.Seal(nil, nonce, pt[:n], ad)
		sum := sha256.Sum256(sealed)
		v.Chunks = append(v.Chunks, vecAttachChunk{Index: i, Last: last, Nonce: nonce, PlaintextLength: n, Tag: sealed[len(sealed)-16:], SealedSHA256: sum[:]})
		ct = append(ct, sealed...)
		pt = pt[n:]
		if last {
			break
		}
	}
	d := sha256.Sum256(ct)
	v.CiphertextLength, v.Digest = len(ct), d[:]
	return v, ct, nil
}

func vecGenAttach(t *testing.T) *vecAttachFile {
	f := &vecAttachFile{vecHeader: vecHeader{vecAttachDescription}}
	for _, c := range []struct {
		name string
		n    int
	}{{"empty", 0}, {"short", 100}, {"one chunk less a byte", 65535}, {"one chunk", 65536}, {"three chunks and a part", 3*65536 + 1000}} {
		pt := vecAttachPlaintext(c.n)
		v, ct, err := vecAttachSeal(vecSeed("attachment "+c.name), pt)
		if err != nil {
			t.Fatal(err)
		}
		v.Name = c.name
		if c.n <= 1024 {
			v.Plaintext = pt
		}
		if len(ct) <= 2048 {
			v.Ciphertext = ct
		}
		f.Vectors = append(f.Vectors, v)
	}
	const c = 65536 + 16 // a full sealed chunk
	const three = "three chunks and a part"
	end := 5 + 3*c + 1000 + 16
	flip := func(i int) *int { return &i }
	f.Refused = []vecAttachRefused{
		{three, "header only", [][2]int{{0, 5}}, nil, nil, "truncated"},
		{three, "cut inside the header", [][2]int{{0, 3}}, nil, nil, "truncated"},
		{three, "version 2", [][2]int{{0, end}}, nil, flip(0), "header"},
		{three, "chunk size 65537", [][2]int{{0, end}}, nil, flip(4), "header"},
		{three, "last chunk dropped", [][2]int{{0, 5 + 3*c}}, nil, nil, "truncated"},
		{three, "cut within a tag's length of a chunk boundary", [][2]int{{0, 5 + 3*c + 15}}, nil, nil, "truncated"},
		{three, "cut inside the last chunk", [][2]int{{0, end - 1}}, nil, nil, "chunk 3"},
		{three, "cut inside chunk 1", [][2]int{{0, 5 + c + 100}}, nil, nil, "chunk 1"},
		{three, "chunk 1 dropped", [][2]int{{0, 5 + c}, {5 + 2*c, end}}, nil, nil, "chunk 1"},
		{three, "chunks 0 and 1 swapped", [][2]int{{0, 5}, {5 + c, 5 + 2*c}, {5, 5 + c}, {5 + 2*c, end}}, nil, nil, "chunk 0"},
		{three, "chunk 0 repeated", [][2]int{{0, 5 + c}, {5, end}}, nil, nil, "chunk 1"},
		{three, "a byte appended", [][2]int{{0, end}}, []byte{0}, nil, "chunk 3"},
		{three, "the last chunk repeated", [][2]int{{0, end}, {5 + 3*c, end}}, nil, nil, "chunk 3"},
		{three, "a byte of chunk 2 flipped", [][2]int{{0, end}}, nil, flip(5 + 2*c + 7), "chunk 2"},
		{three, "a bit of the last tag flipped", [][2]int{{0, end}}, nil, flip(end - 1), "chunk 3"},
		{"one chunk", "the empty last chunk dropped", [][2]int{{0, 5 + c}}, nil, nil, "truncated"},
		{"empty", "the empty last chunk dropped", [][2]int{{0, 5}}, nil, nil, "truncated"},
		{"empty", "the last chunk's flag cleared: the empty chunk sealed as a middle one", nil, nil, nil, "chunk 0"},
	}
	// The last refusal's bytes are the empty file's header and an empty
	// chunk sealed with the last-chunk flag 0x00 under the same key.
	return f
}

// vecAttachRefusedBytes builds a refused ciphertext from the vectors'
// ciphertexts (re-made from their inputs).
func vecAttachRefusedBytes(t *testing.T, f *vecAttachFile, cts map[string][]byte, r vecAttachRefused) []byte {
	ct, ok := cts[r.Vector]
	if !ok {
		t.Fatalf("refused %q names no vector %q", r.Change, r.Vector)
	}
	if r.Ranges == nil {
		// An empty chunk with the flag 0x00 (see vecGenAttach).
		for _, v := range f.Vectors {
			if v.Name == r.Vector {
				aead, err := chacha20poly1305.New(v.PayloadKey)
				if err != nil {
					t.Fatal(err)
				}
				return append(bytes.Clone(v.Header), aead.Seal(nil, make([]byte, 12), nil, v.AssociatedData)...)
			}
		}
	}
	var b []byte
	for _, rg := range r.Ranges {
		b = append(b, ct[rg[0]:rg[1]]...)
	}
	b = append(b, r.Append...)
	if r.Flip != nil {
		b[*r.Flip] ^= 1
	}
	return b
}

func vecReplayAttach(t *testing.T, f *vecAttachFile) {
	cts := map[string][]byte{}
	for _, v := range f.Vectors {
		pt := vecAttachPlaintext(v.PlaintextLength)
		if v.Plaintext != nil {
			vecEq(t, v.Name+": plaintext", v.Plaintext, pt)
		}
		got, ct, err := vecAttachSeal(v.Key, pt)
		if err != nil {
			t.Fatal(err)
		}
		vecEq(t, v.Name+": payload key", got.PayloadKey, v.PayloadKey)
		vecEq(t, v.Name+": associated data", got.AssociatedData, v.AssociatedData)
		vecEq(t, v.Name+": digest", got.Digest, v.Digest)
		if len(got.Chunks) != len(v.Chunks) || got.CiphertextLength != v.CiphertextLength {
			t.Fatalf("%s: %d chunks, %d bytes; file %d, %d", v.Name, len(got.Chunks), got.CiphertextLength, len(v.Chunks), v.CiphertextLength)
		}
		for i, ch := range v.Chunks {
			vecEq(t, fmt.Sprintf("%s: chunk %d nonce", v.Name, i), got.Chunks[i].Nonce, ch.Nonce)
			vecEq(t, fmt.Sprintf("%s: chunk %d tag", v.Name, i), got.Chunks[i].Tag, ch.Tag)
			vecEq(t, fmt.Sprintf("%s: chunk %d sealed", v.Name, i), got.Chunks[i].SealedSHA256, ch.SealedSHA256)
		}
		if v.Ciphertext != nil {
			vecEq(t, v.Name+": ciphertext", ct, v.Ciphertext)
		}
		// The library agrees both ways.
		var buf bytes.Buffer
		w, err := attach.NewWriter(&buf, v.Key)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pt)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		vecEq(t, v.Name+": attach.NewWriter", buf.Bytes(), ct)
		if attach.EncryptedSize(int64(v.PlaintextLength)) != int64(v.CiphertextLength) {
			t.Errorf("%s: EncryptedSize(%d) = %d, file %d", v.Name, v.PlaintextLength, attach.EncryptedSize(int64(v.PlaintextLength)), v.CiphertextLength)
		}
		r, err := attach.NewReader(bytes.NewReader(ct), v.Key)
		if err != nil {
			t.Fatal(err)
		}
		back, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(back, pt) {
			t.Errorf("%s: attach.NewReader: %v", v.Name, err)
		}
		cts[v.Name] = ct
	}
	keys := map[string][]byte{}
	for _, v := range f.Vectors {
		keys[v.Name] = v.Key
	}
	for _, rf := range f.Refused {
		b := vecAttachRefusedBytes(t, f, cts, rf)
		r, err := attach.NewReader(bytes.NewReader(b), keys[rf.Vector])
		var out []byte
		if err == nil {
			out, err = io.ReadAll(r)
		}
		var want error
		var chunk int
		switch {
		case rf.Error == "header":
			want = attach.ErrHeader
		case rf.Error == "truncated":
			want = attach.ErrTruncated
		default:
			if _, serr := fmt.Sscanf(rf.Error, "chunk %d", &chunk); serr != nil {
				t.Fatalf("refused %q: error %q", rf.Change, rf.Error)
			}
			want = attach.ErrChunk
			if wantErr := fmt.Sprintf("chunk %d", chunk); err == nil || !bytes.HasSuffix([]byte(err.Error()), []byte(wantErr)) {
				t.Errorf("%s: %s: got %v, want %s", rf.Vector, rf.Change, err, wantErr)
			}
			if len(out) > chunk*65536 {
				t.Errorf("%s: %s: %d bytes released before chunk %d failed", rf.Vector, rf.Change, len(out), chunk)
			}
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %s: got %v, want %v", rf.Vector, rf.Change, err, want)
		}
	}
}
