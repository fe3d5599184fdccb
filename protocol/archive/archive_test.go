package archive_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/archive"
)

var testUser = protocol.UserID{1, 2, 3}

func encode(t testing.TB, h archive.Header, recs []archive.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Add(r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(b []byte) (archive.Header, []archive.Record, error) {
	r, h, err := archive.NewReader(bytes.NewReader(b))
	if err != nil {
		return h, nil, err
	}
	var out []archive.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return h, out, nil
		}
		if err != nil {
			return h, nil, err
		}
		out = append(out, rec)
	}
}

// TestArchiveStrict: an archive round-trips, and every change a decoder
// must refuse (§14.1) is refused.
func TestArchiveStrict(t *testing.T) {
	h := archive.Header{Kind: archive.Backup, User: testUser, Created: 1780000000000}
	recs := []archive.Record{{"conv/a", []byte("{}")}, {"history/a", []byte("line\n")}, {"identity", bytes.Repeat([]byte{7}, 32)}}
	good := encode(t, h, recs)
	gh, got, err := decode(good)
	if err != nil || gh != h || len(got) != 3 || got[2].Key != "identity" || !bytes.Equal(got[1].Value, recs[1].Value) {
		t.Fatalf("round trip: %+v %+v %v", gh, got, err)
	}
	hs := archive.HeaderSize
	mutate := map[string]func([]byte) []byte{
		"trailing byte":    func(b []byte) []byte { return append(b, 0) },
		"cut":              func(b []byte) []byte { return b[:len(b)-1] },
		"no end":           func(b []byte) []byte { return b[:len(b)-9] },
		"version 2":        func(b []byte) []byte { b[len(archive.Label)] = 2; return b },
		"kind 4":           func(b []byte) []byte { b[len(archive.Label)+1] = 4; return b },
		"zero user":        func(b []byte) []byte { clear(b[len(archive.Label)+2 : len(archive.Label)+18]); return b },
		"label":            func(b []byte) []byte { b[0] = 'S'; return b },
		"count":            func(b []byte) []byte { b[len(b)-1]++; return b },
		"tag":              func(b []byte) []byte { b[hs] = 'X'; return b },
		"key character":    func(b []byte) []byte { b[hs+2] = 'C'; return b },
		"order":            func(b []byte) []byte { return encodeRaw(h, []archive.Record{recs[1], recs[0]}) },
		"duplicate":        func(b []byte) []byte { return encodeRaw(h, []archive.Record{recs[0], recs[0]}) },
		"dot segment":      func(b []byte) []byte { return encodeRaw(h, []archive.Record{{"conv/..", nil}}) },
		"time over 2^63":   func(b []byte) []byte { b[hs-8] = 0x80; return b },
		"value over bound": func(b []byte) []byte { b[hs+2+6] = 0xff; return b },
	}
	for name, f := range mutate {
		if _, _, err := decode(f(bytes.Clone(good))); !errors.Is(err, archive.ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
	var buf bytes.Buffer
	w, _ := archive.NewWriter(&buf, h)
	if w.Add("b", nil) != nil || w.Add("a", nil) == nil || w.Add("B", nil) == nil {
		t.Fatal("the writer takes keys out of order or invalid")
	}
}

// encodeRaw writes records as the format does, without the writer's
// checks (to make what a decoder must refuse).
func encodeRaw(h archive.Header, recs []archive.Record) []byte {
	b := append([]byte(archive.Label), archive.Version, byte(h.Kind))
	b = append(b, h.User[:]...)
	b = append(b, 0, 0, 1, 0x9e, 0x6e, 0x3b, 0x4c, 0)
	for _, r := range recs {
		b = append(b, 'R', byte(len(r.Key)))
		b = append(b, r.Key...)
		b = append(b, byte(len(r.Value)>>24), byte(len(r.Value)>>16), byte(len(r.Value)>>8), byte(len(r.Value)))
		b = append(b, r.Value...)
	}
	n := len(recs)
	return append(b, 'E', 0, 0, 0, 0, 0, 0, 0, byte(n))
}

// TestRecoveryKey: the text form round-trips in any case and with or
// without dashes and spaces; every single-character change is caught by
// the checksum or the alphabet.
func TestRecoveryKey(t *testing.T) {
	k := archive.NewRecoveryKey()
	s := k.String()
	if len(s) != 39 {
		t.Fatalf("%q: %d characters", s, len(s))
	}
	for _, v := range []string{s, bytes.NewBuffer(bytes.ToLower([]byte(s))).String(), string(bytes.ReplaceAll([]byte(s), []byte("-"), []byte(" ")))} {
		if got, err := archive.ParseRecoveryKey(v); err != nil || !got.Equal(k) {
			t.Fatalf("parse %q: %v", v, err)
		}
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := range s {
		if s[i] == '-' {
			continue
		}
		for _, c := range []byte(alphabet + "018") {
			if c == s[i] {
				continue
			}
			b := []byte(s)
			b[i] = c
			if _, err := archive.ParseRecoveryKey(string(b)); !errors.Is(err, archive.ErrRecoveryKey) {
				t.Fatalf("%q (position %d) accepted", b, i)
			}
		}
	}
	for _, bad := range []string{"", s[:38], s + "A", s + "-AAAA"} {
		if _, err := archive.ParseRecoveryKey(bad); !errors.Is(err, archive.ErrRecoveryKey) {
			t.Fatalf("%q accepted", bad)
		}
	}
}

// TestBackupHeader: the right key opens its header; another key, another
// account or a changed byte does not.
func TestBackupHeader(t *testing.T) {
	k, other := archive.NewRecoveryKey(), archive.NewRecoveryKey()
	salt := bytes.Repeat([]byte{9}, archive.SaltSize)
	h, fk, err := k.BackupHeader(testUser, salt)
	if err != nil || len(h) != archive.BackupHeaderSize {
		t.Fatal(err)
	}
	got, err := k.OpenBackupHeader(testUser, h)
	if err != nil || !bytes.Equal(got, fk) {
		t.Fatalf("open: %v", err)
	}
	if _, err := other.OpenBackupHeader(testUser, h); !errors.Is(err, archive.ErrWrongRecoveryKey) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := k.OpenBackupHeader(protocol.UserID{9}, h); !errors.Is(err, archive.ErrWrongRecoveryKey) {
		t.Fatalf("another account: %v", err)
	}
	h2, fk2, _ := k.BackupHeader(testUser, bytes.Repeat([]byte{8}, archive.SaltSize))
	if bytes.Equal(fk, fk2) || bytes.Equal(h, h2) {
		t.Fatal("two salts give one file key")
	}
	h[0] = 2
	if _, err := k.OpenBackupHeader(testUser, h); !errors.Is(err, archive.ErrBackupHeader) {
		t.Fatalf("version 2: %v", err)
	}
}

// FuzzArchive: any input either fails to decode or decodes to records
// that the writer encodes back to exactly the input.
func FuzzArchive(f *testing.F) {
	h := archive.Header{Kind: archive.Transfer, User: testUser, Created: 5}
	f.Add(encode(f, h, nil))
	f.Add(encode(f, h, []archive.Record{{"conv/a", []byte("x")}, {"pin/b", nil}}))
	f.Add([]byte(archive.Label))
	f.Fuzz(func(t *testing.T, b []byte) {
		gh, recs, err := decode(b)
		if err != nil {
			return
		}
		if again := encode(t, gh, recs); !bytes.Equal(again, b) {
			t.Fatalf("decoded %d records from %x, which encode to %x", len(recs), b, again)
		}
	})
}

// FuzzOffer: an offer decodes strictly and round-trips.
func FuzzOffer(f *testing.F) {
	o := archive.Offer{ID: [16]byte{1}, Size: 10}
	f.Add(o.Marshal())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := archive.ParseOffer(b)
		if err == nil && !bytes.Equal(o.Marshal(), b) {
			t.Fatalf("%x decodes and encodes to %x", b, o.Marshal())
		}
	})
}

// FuzzRecoveryKey: a text that parses is a key whose text form parses to
// the same key.
func FuzzRecoveryKey(f *testing.F) {
	f.Add(archive.NewRecoveryKey().String())
	f.Add("aaaa-aaaa")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := archive.ParseRecoveryKey(s)
		if err != nil {
			return
		}
		again, err := archive.ParseRecoveryKey(k.String())
		if err != nil || !again.Equal(k) {
			t.Fatalf("%q parses, its text form %q does not give it back", s, k.String())
		}
	})
}
