package attach_test

import (
	"bytes"
	"io"
	"testing"

	"sandi.dev/protocol/attach"
)

// FuzzAttachReader: (1) an arbitrary ciphertext never makes the reader
// panic, and one that decrypts whole is the only encryption of its
// plaintext under the key (encrypting it again gives the same bytes);
// (2) an arbitrary plaintext (repeated to up to about 200 KiB, so that it
// spans several chunks) round-trips, and its ciphertext with one byte
// flipped, cut at any point, with a byte appended or with two chunks
// swapped is refused.
func FuzzAttachReader(f *testing.F) {
	key := bytes.Repeat([]byte{7}, attach.KeySize)
	var buf bytes.Buffer
	for _, n := range []int{0, 1, 100} {
		buf.Reset()
		w, err := attach.NewWriter(&buf, key)
		if err != nil {
			f.Fatal(err)
		}
		w.Write(pattern(n))
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.Clone(buf.Bytes()), pattern(n), uint8(n%50), uint32(n), uint8(n))
	}
	f.Add([]byte{1, 0, 1, 0, 0}, []byte("x"), uint8(17), uint32(65541), uint8(3))
	f.Fuzz(func(t *testing.T, ct, pt []byte, reps uint8, pos uint32, op uint8) {
		if got, err := decrypt(key, ct); err == nil {
			if again := encrypt(t, key, got); !bytes.Equal(again, ct) {
				t.Fatalf("a ciphertext of %d bytes decrypts, but its plaintext encrypts to other bytes", len(ct))
			}
		}

		if len(pt) == 0 {
			pt = []byte{0}
		}
		want := int(reps%50) * 4096
		for len(pt) < want {
			pt = append(pt, pt...)
		}
		c := encrypt(t, key, pt)
		if int64(len(c)) != attach.EncryptedSize(int64(len(pt))) {
			t.Fatalf("%d bytes: ciphertext of %d, EncryptedSize %d", len(pt), len(c), attach.EncryptedSize(int64(len(pt))))
		}
		if got, err := decrypt(key, c); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes do not round-trip: %v", len(pt), err)
		}
		var bad []byte
		i := int(pos % uint32(len(c)))
		switch op % 4 {
		case 0:
			bad = bytes.Clone(c)
			bad[i] ^= 1 << (op >> 5)
		case 1:
			bad = c[:i]
		case 2:
			bad = append(bytes.Clone(c), op)
		case 3:
			offs := chunkOffsets(len(c))
			if len(offs) < 3 {
				return
			}
			j := i % (len(offs) - 2)
			bad = bytes.Join([][]byte{c[:offs[j]], c[offs[j+1]:offs[j+2]], c[offs[j]:offs[j+1]], c[offs[j+2]:]}, nil)
		}
		r, err := attach.NewReader(bytes.NewReader(bad), key)
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err == nil {
			t.Fatalf("op %d at %d of a %d-byte ciphertext: accepted", op%4, i, len(c))
		}
	})
}
