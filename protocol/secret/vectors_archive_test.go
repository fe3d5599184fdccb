package secret

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"sandi.dev/protocol/archive"
	"sandi.dev/protocol/attach"
)

// ---- archive.json ----

const vecArchiveDescription = `Archives, recovery keys and backups (protocol.md §14). All byte strings hex. ` +
	`recovery_keys: key (16 bytes) → checksum = SHA-256("sandi v1 recovery checksum" || key)[:4]; text = RFC 4648 base32 (A-Z, 2-7, no padding) of key || checksum, 32 characters, in 8 groups of 4 joined by "-". ` +
	`backups: recovery key, user id, salt (32) → check = HKDF-SHA256(key, "sandi v1 backup check" || 0x01 || user id || salt, 32), ` +
	`file_key = HKDF-SHA256(key, "sandi v1 backup key" || 0x01 || user id || salt, 32) (HKDF-Extract with no salt, i.e. 32 zero bytes, then HKDF-Expand with that info), header = 0x01 || salt || check. ` +
	`archives: kind (1 transfer, 2 backup), user id, created (Unix ms), records (key as ASCII, value hex) → encoding = "sandi v1 archive" || 0x01 || kind (u8) || user id (16) || created (u64) || ` +
	`for each record 0x52 || key length (u8) || key || value length (u32) || value || then 0x45 || record count (u64); ` +
	`ciphertext = prefix || the attachment stream (§13) of the encoding under file_key, where prefix is the backup header for a backup and empty for a transfer; digest = SHA-256(ciphertext). ` +
	`offers: id (16), key (32), digest (32), size → encoding = 0x01 || id || key || digest || size (u64). ` +
	`segments: the parts of an incremental backup after the base (the archive named backup): recovery key, user id, salt (32), seq (u32, from 1), prev (SHA-256 of the whole previous part: the base's digest for seq 1) → ` +
	`check = HKDF-SHA256(key, "sandi v1 backup check" || 0x02 || user id || salt, 32), file_key = HKDF-SHA256(key, "sandi v1 backup key" || 0x02 || user id || salt || seq (u32) || prev, 32), ` +
	`header = 0x02 || salt || check || seq (u32) || prev; archive: an archive of kind 3 whose record values are op (u8: 1 put, 2 append, 3 delete) || data, its ciphertext = header || the attachment stream of its encoding under file_key, digest = SHA-256(ciphertext). ` +
	`refused: archive encodings a decoder MUST refuse, each with its reason. Every value here is implementation-independent.`

type vecArchiveFile struct {
	vecHeader
	RecoveryKeys []vecRecoveryKey    `json:"recovery_keys"`
	Backups      []vecBackupHeader   `json:"backups"`
	Archives     []vecArchive        `json:"archives"`
	Offers       []vecOffer          `json:"offers"`
	Refused      []vecArchiveRefused `json:"refused"`
	Segments     []vecSegment        `json:"segments"`
}

type vecSegment struct {
	RecoveryKey vecHex     `json:"recovery_key"`
	User        vecHex     `json:"user"`
	Salt        vecHex     `json:"salt"`
	Seq         uint32     `json:"seq"`
	Prev        vecHex     `json:"prev"`
	Check       vecHex     `json:"check"`
	FileKey     vecHex     `json:"file_key"`
	Header      vecHex     `json:"header"`
	Archive     vecArchive `json:"archive"`
}

func (f *vecArchiveFile) sizes() map[string]int {
	return map[string]int{"recovery_keys": len(f.RecoveryKeys), "backups": len(f.Backups), "archives": len(f.Archives), "offers": len(f.Offers), "refused": len(f.Refused), "segments": len(f.Segments)}
}

type vecRecoveryKey struct {
	Key      vecHex `json:"key"`
	Checksum vecHex `json:"checksum"`
	Text     string `json:"text"`
}

type vecBackupHeader struct {
	RecoveryKey vecHex `json:"recovery_key"`
	User        vecHex `json:"user"`
	Salt        vecHex `json:"salt"`
	Check       vecHex `json:"check"`
	FileKey     vecHex `json:"file_key"`
	Header      vecHex `json:"header"`
}

type vecArchiveRecord struct {
	Key   string `json:"key"`
	Value vecHex `json:"value"`
}

type vecArchive struct {
	Name       string             `json:"name"`
	Kind       int                `json:"kind"`
	User       vecHex             `json:"user"`
	Created    int64              `json:"created"`
	Records    []vecArchiveRecord `json:"records"`
	Encoding   vecHex             `json:"encoding"`
	FileKey    vecHex             `json:"file_key"`
	Prefix     vecHex             `json:"prefix"`
	Ciphertext vecHex             `json:"ciphertext"`
	Digest     vecHex             `json:"digest"`
}

type vecOffer struct {
	ID       vecHex `json:"id"`
	Key      vecHex `json:"key"`
	Digest   vecHex `json:"digest"`
	Size     uint64 `json:"size"`
	Encoding vecHex `json:"encoding"`
}

type vecArchiveRefused struct {
	Reason   string `json:"reason"`
	Encoding vecHex `json:"encoding"`
}

// vecArchiveEncode writes an archive's encoding by hand (not with the
// package), from the layout.
func vecArchiveEncode(kind byte, user []byte, created int64, recs []vecArchiveRecord, count uint64) []byte {
	b := append([]byte("sandi v1 archive"), 1, kind)
	b = append(b, user...)
	b = binary.BigEndian.AppendUint64(b, uint64(created))
	for _, r := range recs {
		b = append(b, 'R', byte(len(r.Key)))
		b = append(b, r.Key...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Value)))
		b = append(b, r.Value...)
	}
	b = append(b, 'E')
	return binary.BigEndian.AppendUint64(b, count)
}

func vecBackupDerive(t *testing.T, label string, key, user, salt []byte) []byte {
	info := append(append(append([]byte(label), 1), user...), salt...)
	k, err := hkdf.Key(sha256.New, key, nil, string(info), 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func vecArchiveSeal(t *testing.T, fileKey, prefix, pt []byte) []byte {
	var buf bytes.Buffer
	buf.Write(prefix)
	w, err := attach.NewWriter(&buf, fileKey)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pt)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func vecGenArchive(t *testing.T) *vecArchiveFile {
	f := &vecArchiveFile{vecHeader: vecHeader{vecArchiveDescription}}
	for _, name := range []string{"alice", "bob"} {
		k, err := archive.RecoveryKeyFromBytes(vecSeed("recovery " + name)[:16])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(append([]byte(archive.LabelRecoveryCheck), k.Bytes()...))
		f.RecoveryKeys = append(f.RecoveryKeys, vecRecoveryKey{Key: k.Bytes(), Checksum: sum[:4], Text: k.String()})
		user := vecUser(name)
		salt := vecSeed("backup salt " + name)
		h, fk, err := k.BackupHeader(user, salt)
		if err != nil {
			t.Fatal(err)
		}
		f.Backups = append(f.Backups, vecBackupHeader{RecoveryKey: k.Bytes(), User: user[:], Salt: salt, Check: h[1+32:], FileKey: fk, Header: h})
	}
	alice := vecUser("alice")
	recs := []vecArchiveRecord{
		{"conv/0123", []byte(`{"title":"the plan"}`)},
		{"history/0123", []byte("{\"seq\":1,\"text\":\"hello\"}\n")},
		{"pin/4567", []byte(`{"verified":true}`)},
	}
	for _, c := range []struct {
		name string
		kind archive.Kind
		recs []vecArchiveRecord
	}{
		{"empty transfer", archive.Transfer, nil},
		{"transfer", archive.Transfer, recs},
		{"backup", archive.Backup, append(append(recs[:2:2], vecArchiveRecord{"identity", vecSeed("identity alice")}), recs[2])},
	} {
		var buf bytes.Buffer
		w, err := archive.NewWriter(&buf, archive.Header{Kind: c.kind, User: alice, Created: 1_780_000_000_000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range c.recs {
			if err := w.Add(r.Key, r.Value); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		v := vecArchive{Name: c.name, Kind: int(c.kind), User: alice[:], Created: 1_780_000_000_000, Records: c.recs, Encoding: buf.Bytes(), FileKey: vecSeed("archive key " + c.name)}
		if c.kind == archive.Backup {
			v.Prefix, v.FileKey = f.Backups[0].Header, f.Backups[0].FileKey
		}
		v.Ciphertext = vecArchiveSeal(t, v.FileKey, v.Prefix, v.Encoding)
		d := sha256.Sum256(v.Ciphertext)
		v.Digest = d[:]
		f.Archives = append(f.Archives, v)
	}
	var o archive.Offer
	copy(o.ID[:], vecSeed("archive id"))
	copy(o.Key[:], f.Archives[1].FileKey)
	copy(o.Digest[:], f.Archives[1].Digest)
	o.Size = uint64(len(f.Archives[1].Ciphertext))
	f.Offers = append(f.Offers, vecOffer{ID: o.ID[:], Key: o.Key[:], Digest: o.Digest[:], Size: o.Size, Encoding: o.Marshal()})
	good := f.Archives[1].Encoding
	for _, r := range []struct {
		reason string
		enc    []byte
	}{
		{"version 2", func() []byte { b := bytes.Clone(good); b[16] = 2; return b }()},
		{"kind 4", func() []byte { b := bytes.Clone(good); b[17] = 4; return b }()},
		{"records out of order", vecArchiveEncode(1, alice[:], 1, []vecArchiveRecord{recs[1], recs[0]}, 2)},
		{"a key repeated", vecArchiveEncode(1, alice[:], 1, []vecArchiveRecord{recs[0], recs[0]}, 2)},
		{"a key with an upper-case letter", vecArchiveEncode(1, alice[:], 1, []vecArchiveRecord{{"Conv/1", nil}}, 1)},
		{"a key with an empty segment", vecArchiveEncode(1, alice[:], 1, []vecArchiveRecord{{"conv//1", nil}}, 1)},
		{"the count differs", vecArchiveEncode(1, alice[:], 1, recs, 2)},
		{"no end marker", good[:len(good)-9]},
		{"a byte after the end", append(bytes.Clone(good), 0)},
		{"zero user id", vecArchiveEncode(1, make([]byte, 16), 1, nil, 0)},
	} {
		f.Refused = append(f.Refused, vecArchiveRefused{Reason: r.reason, Encoding: r.enc})
	}
	vecGenSegments(t, f)
	return f
}

// vecGenSegments chains two segments to the backup archive of f.
func vecGenSegments(t *testing.T, f *vecArchiveFile) {
	k, err := archive.RecoveryKeyFromBytes(f.Backups[0].RecoveryKey)
	if err != nil {
		t.Fatal(err)
	}
	alice := vecUser("alice")
	prev := f.Archives[2].Digest
	for i, recs := range [][]vecArchiveRecord{
		{
			{"conv/0123", archive.SegmentValue(archive.OpPut, []byte(`{"title":"the new plan"}`))},
			{"history/0123", archive.SegmentValue(archive.OpAppend, []byte("{\"seq\":2,\"text\":\"again\"}\n"))},
		},
		{{"pin/4567", archive.SegmentValue(archive.OpDelete, nil)}},
	} {
		l := archive.Link{Seq: uint32(i + 1)}
		copy(l.Prev[:], prev)
		salt := vecSeed(fmt.Sprintf("segment salt %d", i+1))
		h, fk, err := k.SegmentHeader(alice, salt, l)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		created := int64(1_780_000_000_000 + 3_600_000*(i+1))
		w, err := archive.NewWriter(&buf, archive.Header{Kind: archive.Segment, User: alice, Created: created})
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
		a := vecArchive{Name: fmt.Sprintf("segment %d", i+1), Kind: int(archive.Segment), User: alice[:], Created: created, Records: recs, Encoding: buf.Bytes(), FileKey: fk, Prefix: h}
		a.Ciphertext = vecArchiveSeal(t, fk, h, a.Encoding)
		d := sha256.Sum256(a.Ciphertext)
		a.Digest = d[:]
		f.Segments = append(f.Segments, vecSegment{RecoveryKey: k.Bytes(), User: alice[:], Salt: salt, Seq: l.Seq, Prev: prev, Check: h[1+32 : 1+64], FileKey: fk, Header: h, Archive: a})
		prev = a.Digest
	}
}

func vecReplaySegments(t *testing.T, f *vecArchiveFile) {
	prev := f.Archives[2].Digest
	for _, v := range f.Segments {
		vecEq(t, "segment prev", v.Prev, prev)
		check, err := hkdf.Key(sha256.New, v.RecoveryKey, nil, string(append(append(append([]byte("sandi v1 backup check"), 2), v.User...), v.Salt...)), 32)
		if err != nil {
			t.Fatal(err)
		}
		vecEq(t, "segment check", check, v.Check)
		info := append(append(append([]byte("sandi v1 backup key"), 2), v.User...), v.Salt...)
		info = append(binary.BigEndian.AppendUint32(info, v.Seq), v.Prev...)
		fk, err := hkdf.Key(sha256.New, v.RecoveryKey, nil, string(info), 32)
		if err != nil {
			t.Fatal(err)
		}
		vecEq(t, "segment file key", fk, v.FileKey)
		h := append(binary.BigEndian.AppendUint32(append(append([]byte{2}, v.Salt...), v.Check...), v.Seq), v.Prev...)
		vecEq(t, "segment header", h, v.Header)
		k, err := archive.RecoveryKeyFromBytes(v.RecoveryKey)
		if err != nil {
			t.Fatal(err)
		}
		var user [16]byte
		copy(user[:], v.User)
		if l, opened, err := k.OpenSegmentHeader(user, v.Header); err != nil || l.Seq != v.Seq || !bytes.Equal(opened, v.FileKey) {
			t.Errorf("segment %d: the header does not open: %v", v.Seq, err)
		}
		for _, r := range v.Archive.Records {
			if _, _, err := archive.ParseSegmentValue(r.Value); err != nil {
				t.Errorf("segment %d: record %s: %v", v.Seq, r.Key, err)
			}
		}
		prev = v.Archive.Digest
	}
}

func vecReplayArchive(t *testing.T, f *vecArchiveFile) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for _, v := range f.RecoveryKeys {
		sum := sha256.Sum256(append([]byte("sandi v1 recovery checksum"), v.Key...))
		vecEq(t, "recovery checksum", sum[:4], v.Checksum)
		s := enc.EncodeToString(append(bytes.Clone(v.Key), v.Checksum...))
		var groups []string
		for i := 0; i < len(s); i += 4 {
			groups = append(groups, s[i:i+4])
		}
		if strings.Join(groups, "-") != v.Text {
			t.Errorf("recovery key text %q, file %q", strings.Join(groups, "-"), v.Text)
		}
		k, err := archive.ParseRecoveryKey(v.Text)
		if err != nil {
			t.Fatal(err)
		}
		vecEq(t, "parsed recovery key", k.Bytes(), v.Key)
	}
	for _, v := range f.Backups {
		vecEq(t, "backup check", vecBackupDerive(t, "sandi v1 backup check", v.RecoveryKey, v.User, v.Salt), v.Check)
		vecEq(t, "backup file key", vecBackupDerive(t, "sandi v1 backup key", v.RecoveryKey, v.User, v.Salt), v.FileKey)
		vecEq(t, "backup header", append(append([]byte{1}, v.Salt...), v.Check...), v.Header)
	}
	vecReplaySegments(t, f)
	all := f.Archives
	for _, v := range f.Segments {
		all = append(all[:len(all):len(all)], v.Archive)
	}
	for _, v := range all {
		vecEq(t, v.Name+": encoding", vecArchiveEncode(byte(v.Kind), v.User, v.Created, v.Records, uint64(len(v.Records))), v.Encoding)
		ct := vecArchiveSeal(t, v.FileKey, v.Prefix, v.Encoding)
		vecEq(t, v.Name+": ciphertext", ct, v.Ciphertext)
		d := sha256.Sum256(ct)
		vecEq(t, v.Name+": digest", d[:], v.Digest)
		r, _, err := archive.NewReader(bytes.NewReader(v.Encoding))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ; ; n++ {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
		}
		if n != len(v.Records) {
			t.Errorf("%s: %d records decoded, file has %d", v.Name, n, len(v.Records))
		}
	}
	for _, v := range f.Offers {
		b := append(append(append(append([]byte{1}, v.ID...), v.Key...), v.Digest...), binary.BigEndian.AppendUint64(nil, v.Size)...)
		vecEq(t, "offer", b, v.Encoding)
		if _, err := archive.ParseOffer(v.Encoding); err != nil {
			t.Error(err)
		}
	}
	for _, v := range f.Refused {
		r, _, err := archive.NewReader(bytes.NewReader(v.Encoding))
		for err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, archive.ErrFormat) {
			t.Errorf("%s: decoded (%v)", v.Reason, err)
		}
	}
}
