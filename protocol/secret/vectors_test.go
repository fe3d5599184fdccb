package secret

//go:generate go test -run ^TestVectors$ -update

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"

	"golang.org/x/crypto/chacha20poly1305"

	"sandi.dev/protocol"
	"sandi.dev/protocol/archive"
)

// Protocol test vectors (DESIGN §2, STYLE "Vectors as data").
//
// Each file under testdata/vectors is generated here from fixed inputs:
// every private key from a seed SHA-256("sandi vector seed" || name), every
// identifier from SHA-256("sandi vector id" || name)[:16], fixed times. HPKE
// sealing draws ephemeral randomness from crypto/rand; it runs under
// cryptotest.SetGlobalRandom, and the ephemeral values it drew are recorded
// in the file so that any implementation can redo the seal.
//
// Without -update, TestVectors checks three things per file: the file decodes
// strictly (no unknown fields, lower-case hex) and holds vectors; it equals,
// byte for byte, what the generator produces now; and a replay that reads
// only the file's inputs recomputes every output with the library (and, for
// HPKE, with an independent derandomized seal). With -update it rewrites the
// files first. Because of SetGlobalRandom, no subtest here may be parallel.

// vecDir is the repository's testdata/vectors seen from this package.
var vecDir = filepath.Join("..", "..", "testdata", "vectors")

func init() {
	// Another test file of the package may register -update too; share it.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "regenerate the protocol test vectors under testdata/vectors")
	}
}

func vecUpdating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// Fixed times of the vectors.
const (
	vecNow   = 1_780_000_000 // Unix seconds
	vecNowMS = vecNow * 1000 // Unix milliseconds
)

func TestVectors(t *testing.T) {
	specs := []vecSpec{
		vecCase("prekey.json", vecGenPreKeys, vecReplayPreKeys),
		vecCase("membership.json", vecGenMembership, vecReplayMembership),
		vecCase("epoch.json", vecGenEpoch, vecReplayEpoch),
		vecCase("ratchet.json", vecGenRatchet, vecReplayRatchet),
		vecCase("envelope.json", vecGenEnvelopes, vecReplayEnvelopes),
		vecCase("safety.json", vecGenSafety, vecReplaySafety),
		vecCase("padding.json", vecGenPadding, vecReplayPadding),
		vecCase("link.json", vecGenLink, vecReplayLink),
		vecCase("devicelist.json", vecGenDeviceLists, vecReplayDeviceLists),
		vecCase("devicename.json", vecGenDeviceNames, vecReplayDeviceNames),
		vecCase("keys.json", vecGenKeys, vecReplayKeys),
		vecCase("state.json", vecGenState, vecReplayState),
		vecCase("attach.json", vecGenAttach, vecReplayAttach),
		vecCase("archive.json", vecGenArchive, vecReplayArchive),
		vecCase("typing.json", vecGenTyping, vecReplayTyping),
		vecCase("block.json", vecGenBlocks, vecReplayBlocks),
	}
	known := map[string]bool{}
	for _, s := range specs {
		known[s.file] = true
		t.Run(strings.TrimSuffix(s.file, ".json"), func(t *testing.T) { s.run(t, filepath.Join(vecDir, s.file)) })
	}
	// A stale file nobody checks is worse than none.
	files, err := filepath.Glob(filepath.Join(vecDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !known[filepath.Base(f)] {
			t.Errorf("%s: no test replays this file; remove it or add it to TestVectors", f)
		}
	}
}

// ---- file handling ----

// vecHex is a byte string written as lower-case hex.
type vecHex []byte

func (h vecHex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *vecHex) UnmarshalText(b []byte) error {
	if bytes.ContainsAny(b, "ABCDEF") {
		return errors.New("hex must be lower-case")
	}
	out := make([]byte, hex.DecodedLen(len(b)))
	if _, err := hex.Decode(out, b); err != nil {
		return err
	}
	*h = out
	return nil
}

// vecHeader is the part every vector file shares.
type vecHeader struct {
	Description string `json:"description"`
}

func (h *vecHeader) describe() string { return h.Description }

type vecFile interface {
	describe() string
	// sizes names each list of vectors the file must hold with its length.
	sizes() map[string]int
}

type vecSpec struct {
	file string
	run  func(t *testing.T, path string)
}

// vecCase ties a file to its generator and its replay.
func vecCase[F vecFile](file string, gen func(*testing.T) F, replay func(*testing.T, F)) vecSpec {
	return vecSpec{file: file, run: func(t *testing.T, path string) {
		want, err := vecEncode(gen(t))
		if err != nil {
			t.Fatal(err)
		}
		if vecUpdating() {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (regenerate with: go generate ./protocol/secret)", err)
		}
		loaded, err := vecDecode[F](got)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if loaded.describe() == "" {
			t.Errorf("%s: no description", path)
		}
		for what, n := range loaded.sizes() {
			if n == 0 {
				t.Fatalf("%s: found zero %s", path, what)
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the generator produces (if the change is intended, run go generate ./protocol/secret): %s", path, vecFirstDiff(got, want))
		}
		replay(t, loaded)
	}}
}

func vecEncode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// vecDecode decodes one JSON value strictly into a new F (a pointer type).
func vecDecode[F any](b []byte) (F, error) {
	var f F
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, err
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return f, errors.New("trailing data after the JSON value")
	}
	if v := reflect.ValueOf(f); !v.IsValid() || v.IsNil() {
		return f, errors.New("file holds null")
	}
	return f, nil
}

func vecFirstDiff(got, want []byte) string {
	g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	short := func(b []byte) string {
		if len(b) > 160 {
			return string(b[:160]) + "…"
		}
		return string(b)
	}
	for i := range max(len(g), len(w)) {
		var gl, wl []byte
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if !bytes.Equal(gl, wl) {
			return fmt.Sprintf("first at line %d:\n  file:      %s\n  generated: %s", i+1, short(gl), short(wl))
		}
	}
	return "(no line differs)"
}

// vecEq reports a byte-string mismatch.
func vecEq(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n  computed %s\n  file     %s", what, vecShort(got), vecShort(want))
	}
}

func vecShort(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 96 {
		s = fmt.Sprintf("%s…%s (%d bytes)", s[:48], s[len(s)-48:], len(b))
	}
	return s
}

// ---- fixed inputs ----

func vecSeed(name string) vecHex {
	s := sha256.Sum256([]byte("sandi vector seed" + name))
	return s[:]
}

func vecID(name string) [protocol.IDSize]byte {
	s := sha256.Sum256([]byte("sandi vector id" + name))
	return [protocol.IDSize]byte(s[:protocol.IDSize])
}

func vecUser(name string) protocol.UserID { return protocol.UserID(vecID("user " + name)) }

func vecDevice(name string) protocol.DeviceID { return protocol.DeviceID(vecID("device " + name)) }

func vecConversation(name string) protocol.ConversationID {
	return protocol.ConversationID(vecID("conversation " + name))
}

func vecIdentity(t *testing.T, name string) *IdentityPrivateKey {
	t.Helper()
	k, err := IdentityFromSeed(vecSeed("identity " + name))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func vecKEM(t *testing.T, name string) *KEMPrivateKey {
	t.Helper()
	k, err := KEMKeyFromSeed(vecSeed("kem " + name))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func vecPub(k *IdentityPrivateKey) vecHex {
	p := k.Public()
	return p[:]
}

// vecData returns n deterministic bytes: SHA-256 in counter mode over name.
func vecData(name string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for i := uint32(0); len(out) < n; i++ {
		h := sha256.New()
		h.Write([]byte("sandi vector data" + name))
		h.Write(binary.BigEndian.AppendUint32(nil, i))
		out = h.Sum(out)
	}
	return out[:n]
}

// ---- HPKE with explicit ephemeral values ----

// vecXWingLabel ends the X-Wing shared-secret combiner input.
const vecXWingLabel = `\./` + `/^\`

// vecSealDerand is HPKE base mode (RFC 9180) single-shot Seal with the suite
// of protocol.Suite (X-Wing, HKDF-SHA256, ChaCha20-Poly1305) and an empty
// aad, with the encapsulation's randomness given: m for ML-KEM-768
// Encaps_internal and skX as the X25519 ephemeral secret. It is written from
// the specifications, independently of crypto/hpke, so that the vectors state
// a recipe another implementation can follow.
func vecSealDerand(to protocol.KEMPublicKey, info, pt, m, skX []byte) (enc, ct, ss []byte, err error) {
	kem, kdf, aead := protocol.Suite()
	if kem.ID() != 0x647a || kdf.ID() != 0x0001 || aead.ID() != 0x0003 {
		return nil, nil, nil, fmt.Errorf("suite %#x/%#x/%#x is not the one the vectors describe", kem.ID(), kdf.ID(), aead.ID())
	}
	pub := to.Bytes()
	pkM, pkX := pub[:mlkem.EncapsulationKeySize768], pub[mlkem.EncapsulationKeySize768:]
	ek, err := mlkem.NewEncapsulationKey768(pkM)
	if err != nil {
		return nil, nil, nil, err
	}
	ssM, ctM, err := mlkemtest.Encapsulate768(ek, m)
	if err != nil {
		return nil, nil, nil, err
	}
	eph, err := ecdh.X25519().NewPrivateKey(skX)
	if err != nil {
		return nil, nil, nil, err
	}
	peer, err := ecdh.X25519().NewPublicKey(pkX)
	if err != nil {
		return nil, nil, nil, err
	}
	ssX, err := eph.ECDH(peer)
	if err != nil {
		return nil, nil, nil, err
	}
	ctX := eph.PublicKey().Bytes()
	h := sha3.New256()
	for _, p := range [][]byte{ssM, ssX, ctX, pkX, []byte(vecXWingLabel)} {
		h.Write(p)
	}
	ss = h.Sum(nil)

	suite := []byte("HPKE")
	for _, id := range []uint16{kem.ID(), kdf.ID(), aead.ID()} {
		suite = binary.BigEndian.AppendUint16(suite, id)
	}
	extract := func(salt []byte, label string, ikm []byte) ([]byte, error) {
		in := slices.Concat([]byte("HPKE-v1"), suite, []byte(label), ikm)
		return hkdf.Extract(sha256.New, in, salt)
	}
	expand := func(prk []byte, label string, info []byte, n int) ([]byte, error) {
		in := slices.Concat(binary.BigEndian.AppendUint16(nil, uint16(n)), []byte("HPKE-v1"), suite, []byte(label), info)
		return hkdf.Expand(sha256.New, prk, string(in), n)
	}
	pskIDHash, err := extract(nil, "psk_id_hash", nil)
	if err != nil {
		return nil, nil, nil, err
	}
	infoHash, err := extract(nil, "info_hash", info)
	if err != nil {
		return nil, nil, nil, err
	}
	context := slices.Concat([]byte{0x00}, pskIDHash, infoHash) // mode_base
	secret, err := extract(ss, "secret", nil)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := expand(secret, "key", context, chacha20poly1305.KeySize)
	if err != nil {
		return nil, nil, nil, err
	}
	nonce, err := expand(secret, "base_nonce", context, chacha20poly1305.NonceSize)
	if err != nil {
		return nil, nil, nil, err
	}
	a, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return slices.Concat(ctM, ctX), a.Seal(nil, nonce, pt, nil), ss, nil
}

// vecRandomStream returns the first n bytes that crypto/rand yields after
// cryptotest.SetGlobalRandom(t, seed): a math/rand/v2 ChaCha8 stream whose
// 32-byte seed is seed, little-endian, then zeros. This mirrors Go's
// implementation; vecSealDerand confirms each use of it.
func vecRandomStream(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:8], seed)
	out := make([]byte, n)
	if _, err := mathrand.NewChaCha8(s).Read(out); err != nil {
		panic(err)
	}
	return out
}

// vecEphemeral is the randomness of one X-Wing encapsulation as Go's
// crypto/hpke draws it: the X25519 ephemeral secret first, then ML-KEM's m.
type vecEphemeral struct{ skX, m []byte }

func vecEphemerals(stream []byte, n int) []vecEphemeral {
	out := make([]vecEphemeral, n)
	for i := range out {
		out[i] = vecEphemeral{skX: stream[64*i : 64*i+32], m: stream[64*i+32 : 64*i+64]}
	}
	return out
}

// ---- prekey.json ----

const vecPreKeyDescription = `Signed pre-keys (protocol.md §5.1) and bundles (§5.2). ` +
	`All integers are big-endian, all byte strings hex. ` +
	`Each entry of "vectors": identity_public is the Ed25519 public key of the 32-byte RFC 8032 seed identity_seed; ` +
	`kem_public is the 1216-byte X-Wing public key (ML-KEM-768 encapsulation key 1184 || X25519 public key 32) of the 32-byte X-Wing seed kem_seed ` +
	`(SHAKE256(kem_seed) gives 64 bytes of ML-KEM-768 seed d || z, then 32 bytes of X25519 private key, as in draft-connolly-cfrg-xwing-kem and Go's crypto/hpke MLKEM768X25519); ` +
	`kind is 1 signed, 2 one-time, 3 last-resort (kind_name says which); ` +
	`signed_data = "sandi v1 prekey" || 0x01 (version) || user (16) || device (16) || kind (1) || id (u32) || created (u64, Unix seconds) || kem_public; ` +
	`signature = Ed25519 signature of signed_data by identity_seed (deterministic); ` +
	`encoded = kind || id || created || kem_public || signature (1293 bytes). ` +
	`Each entry of "bundles": prekeys lists the bundle's pre-keys in bundle order (signed, last-resort, then the one-time keys), each made from kem_seed, kind, id and created and signed for (user, device) by identity_seed as above; ` +
	`encoded = 0x01 || user || device || identity_public || signed pre-key || last-resort pre-key || one-time count (u16) || one-time pre-keys, each pre-key encoded as in "vectors". ` +
	`Every value here is implementation-independent.`

type vecPreKeyFile struct {
	vecHeader
	Vectors []vecPreKey `json:"vectors"`
	Bundles []vecBundle `json:"bundles"`
}

func (f *vecPreKeyFile) sizes() map[string]int {
	return map[string]int{"pre-key vectors": len(f.Vectors), "bundle vectors": len(f.Bundles)}
}

type vecPreKey struct {
	Name         string            `json:"name"`
	IdentitySeed vecHex            `json:"identity_seed"`
	Identity     vecHex            `json:"identity_public"`
	User         protocol.UserID   `json:"user"`
	Device       protocol.DeviceID `json:"device"`
	KEMSeed      vecHex            `json:"kem_seed"`
	KEMPublic    vecHex            `json:"kem_public"`
	Kind         uint8             `json:"kind"`
	KindName     string            `json:"kind_name"`
	ID           uint32            `json:"id"`
	Created      int64             `json:"created"`
	SignedData   vecHex            `json:"signed_data"`
	Signature    vecHex            `json:"signature"`
	Encoded      vecHex            `json:"encoded"`
}

type vecBundleKey struct {
	KEMSeed vecHex `json:"kem_seed"`
	Kind    uint8  `json:"kind"`
	ID      uint32 `json:"id"`
	Created int64  `json:"created"`
}

type vecBundle struct {
	Name         string            `json:"name"`
	IdentitySeed vecHex            `json:"identity_seed"`
	Identity     vecHex            `json:"identity_public"`
	User         protocol.UserID   `json:"user"`
	Device       protocol.DeviceID `json:"device"`
	PreKeys      []vecBundleKey    `json:"prekeys"`
	Encoded      vecHex            `json:"encoded"`
}

// vecMakeBundle builds and signs a bundle from keys in bundle order.
func vecMakeBundle(id *IdentityPrivateKey, user protocol.UserID, device protocol.DeviceID, keys []vecBundleKey) (*protocol.Bundle, PreKeyPrivates, error) {
	if len(keys) < 2 {
		return nil, nil, fmt.Errorf("bundle needs a signed and a last-resort pre-key, have %d keys", len(keys))
	}
	b := &protocol.Bundle{User: user, Device: device, Identity: id.Public()}
	privs := make(PreKeyPrivates, len(keys))
	for i, k := range keys {
		kem, err := KEMKeyFromSeed(k.KEMSeed)
		if err != nil {
			return nil, nil, err
		}
		pk := SignPreKey(id, user, device, protocol.PreKeyKind(k.Kind), k.ID, k.Created, kem)
		privs[k.ID] = kem
		switch i {
		case 0:
			b.Signed = pk
		case 1:
			b.LastResort = pk
		default:
			b.OneTime = append(b.OneTime, pk)
		}
	}
	return b, privs, nil
}

type vecKeySpec struct {
	kind    protocol.PreKeyKind
	id      uint32
	created int64
}

// vecBundleKeys names every pre-key seed after the device and the key id.
func vecBundleKeys(device string, specs ...vecKeySpec) []vecBundleKey {
	out := make([]vecBundleKey, len(specs))
	for i, s := range specs {
		out[i] = vecBundleKey{KEMSeed: vecSeed(fmt.Sprintf("kem %s prekey %d", device, s.id)), Kind: uint8(s.kind), ID: s.id, Created: s.created}
	}
	return out
}

func vecGenPreKeys(t *testing.T) *vecPreKeyFile {
	f := &vecPreKeyFile{vecHeader: vecHeader{vecPreKeyDescription}}
	id := vecIdentity(t, "alice")
	user, dev := vecUser("alice"), vecDevice("alice laptop")
	for _, c := range []struct {
		name string
		vecKeySpec
	}{
		{"signed pre-key", vecKeySpec{protocol.SignedPreKey, 1, vecNow}},
		{"last-resort pre-key", vecKeySpec{protocol.LastResortPreKey, 2, vecNow}},
		{"one-time pre-key", vecKeySpec{protocol.OneTimePreKey, 3, vecNow}},
		{"one-time pre-key with the largest id", vecKeySpec{protocol.OneTimePreKey, math.MaxUint32, vecNow + 1}},
	} {
		kem := vecKEM(t, fmt.Sprintf("alice laptop prekey %d", c.id))
		pk := SignPreKey(id, user, dev, c.kind, c.id, c.created, kem)
		f.Vectors = append(f.Vectors, vecPreKey{
			Name: c.name, IdentitySeed: id.Seed(), Identity: vecPub(id), User: user, Device: dev,
			KEMSeed: kem.Seed(), KEMPublic: kem.Public().Bytes(),
			Kind: uint8(c.kind), KindName: c.kind.String(), ID: c.id, Created: c.created,
			SignedData: protocol.PreKeySignedData(user, dev, &pk), Signature: pk.Signature[:], Encoded: pk.Marshal(),
		})
	}
	for _, c := range []struct {
		name, device string
		keys         []vecKeySpec
	}{
		{"bundle with two one-time pre-keys", "alice laptop", []vecKeySpec{
			{protocol.SignedPreKey, 1, vecNow}, {protocol.LastResortPreKey, 2, vecNow},
			{protocol.OneTimePreKey, 3, vecNow}, {protocol.OneTimePreKey, 4, vecNow},
		}},
		{"bundle with no one-time pre-key", "alice phone", []vecKeySpec{
			{protocol.SignedPreKey, 10, vecNow - 86400}, {protocol.LastResortPreKey, 11, vecNow - 2*86400},
		}},
	} {
		keys := vecBundleKeys(c.device, c.keys...)
		b, _, err := vecMakeBundle(id, user, vecDevice(c.device), keys)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Verify(); err != nil {
			t.Fatal(err)
		}
		f.Bundles = append(f.Bundles, vecBundle{
			Name: c.name, IdentitySeed: id.Seed(), Identity: vecPub(id), User: user, Device: b.Device,
			PreKeys: keys, Encoded: b.Marshal(),
		})
	}
	return f
}

func vecReplayPreKeys(t *testing.T, f *vecPreKeyFile) {
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			id, err := IdentityFromSeed(v.IdentitySeed)
			if err != nil {
				t.Fatal(err)
			}
			pub := id.Public()
			vecEq(t, "identity_public", pub[:], v.Identity)
			kem, err := KEMKeyFromSeed(v.KEMSeed)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "kem_public", kem.Public().Bytes(), v.KEMPublic)
			kind := protocol.PreKeyKind(v.Kind)
			if kind.String() != v.KindName {
				t.Errorf("kind_name: kind %d is %q, file says %q", v.Kind, kind, v.KindName)
			}
			pk := SignPreKey(id, v.User, v.Device, kind, v.ID, v.Created, kem)
			vecEq(t, "signed_data", protocol.PreKeySignedData(v.User, v.Device, &pk), v.SignedData)
			vecEq(t, "signature", pk.Signature[:], v.Signature)
			vecEq(t, "encoded", pk.Marshal(), v.Encoded)
			parsed, err := protocol.ParsePreKey(v.Encoded)
			if err != nil {
				t.Fatal(err)
			}
			if *parsed != pk {
				t.Errorf("parsed pre-key differs from the one built from the inputs")
			}
			if err := parsed.Verify(pub, v.User, v.Device); err != nil {
				t.Error(err)
			}
		})
	}
	for _, v := range f.Bundles {
		t.Run(v.Name, func(t *testing.T) {
			id, err := IdentityFromSeed(v.IdentitySeed)
			if err != nil {
				t.Fatal(err)
			}
			pub := id.Public()
			vecEq(t, "identity_public", pub[:], v.Identity)
			b, _, err := vecMakeBundle(id, v.User, v.Device, v.PreKeys)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "encoded", b.Marshal(), v.Encoded)
			parsed, err := protocol.ParseBundle(v.Encoded)
			if err != nil {
				t.Fatal(err)
			}
			if err := parsed.Verify(); err != nil {
				t.Error(err)
			}
			vecEq(t, "encoded after parsing", parsed.Marshal(), v.Encoded)
		})
	}
}

// ---- membership.json ----

const vecMembershipDescription = `A membership chain (protocol.md §6). All integers are big-endian, all byte strings hex. ` +
	`keys: Ed25519 identity keys, public = the RFC 8032 public key of seed. ` +
	`Each record is built from op, conversation, seq, prev, time (Unix milliseconds), author, members and users; ` +
	`op is 1 create, 2 add, 3 remove, 4 leave, 5 role, 6 rekey, 7 rekey-cosigned (op_name says which); a member's role is 1 member, 2 admin. ` +
	`A rekey-cosigned record also carries cosigner (the public key of the key named by cosigner) and cosignature: cosigned_data = "sandi v1 rekey cosignature" || the encoding without its co-signature and signature; cosignature = Ed25519 signature of cosigned_data by cosigner. ` +
	`signed_data = "sandi v1 membership record" || the encoding without its signature (with the co-signature, for rekey-cosigned); ` +
	`signature = Ed25519 signature of signed_data by the key named by signer: the author's current identity key, except for both rekeys, which the new key they announce signs (a rekey names only its author); ` +
	`encoded = 0x01 (version) || op (1) || conversation (16) || seq (u64) || prev (32) || time (u64) || author (16) || member count (u16) || members, each user (16) || identity (32) || role (1) || user count (u16) || users (16 each) || [rekey-cosigned only: cosigner (32) || cosignature (64)] || signature (64); ` +
	`hash = SHA-256("sandi v1 membership hash" || encoded); each record's prev is the hash of the record before it (32 zero bytes for the genesis record, seq 0). ` +
	`The chain: alice creates it with bob and carol; adds dave and eve; makes carol an admin; carol removes dave; eve leaves; bob announces a new identity key (a rekey, which makes him a plain member); alice makes bob an admin again; bob, signing with his new key, adds dave back; ` +
	`alice moves to a second key in a rekey co-signed by her first (she stays admin); a server forges a rekey of alice to a key of its own (she becomes a plain member); alice, co-signing with her second key, the one she had before the forged rekey, announces that key again and is admin again; she adds eve back. ` +
	`Verifying the records in order from the genesis succeeds (rules of §6.2) ` +
	`and leaves final_members (sorted by user id), with final_seq and final_head the seq and hash of the last record; ` +
	`final_rekeyed lists, for each member whose key came through a rekey not co-signed by the key it replaced and not since restored, the key and role it had before the first such rekey (here bob, whose rekey no co-signed rekey undid). ` +
	`Every value here is implementation-independent.`

type vecMembershipFile struct {
	vecHeader
	Vectors []vecChain `json:"vectors"`
}

func (f *vecMembershipFile) sizes() map[string]int {
	n := map[string]int{"chains": len(f.Vectors)}
	for _, v := range f.Vectors {
		if len(v.Records) < 5 {
			n["chains of at least 5 records"] = 0
		}
	}
	return n
}

type vecKey struct {
	Name   string `json:"name"`
	Seed   vecHex `json:"seed"`
	Public vecHex `json:"public"`
}

type vecMember struct {
	User     protocol.UserID `json:"user"`
	Identity vecHex          `json:"identity"`
	Role     uint8           `json:"role"`
}

type vecRecord struct {
	Op       uint8             `json:"op"`
	OpName   string            `json:"op_name"`
	Seq      uint64            `json:"seq"`
	Prev     vecHex            `json:"prev"`
	Time     int64             `json:"time"`
	Author   protocol.UserID   `json:"author"`
	Signer   string            `json:"signer"`
	Cosigner string            `json:"cosigner,omitempty"`
	Members  []vecMember       `json:"members"`
	Users    []protocol.UserID `json:"users"`
	// CosignedData and Cosignature: rekey-cosigned records only.
	CosignedData vecHex `json:"cosigned_data,omitempty"`
	Cosignature  vecHex `json:"cosignature,omitempty"`
	SignedData   vecHex `json:"signed_data"`
	Signature    vecHex `json:"signature"`
	Encoded      vecHex `json:"encoded"`
	Hash         vecHex `json:"hash"`
}

type vecChain struct {
	Name         string                  `json:"name"`
	Conversation protocol.ConversationID `json:"conversation"`
	Keys         []vecKey                `json:"keys"`
	Records      []vecRecord             `json:"records"`
	FinalSeq     uint64                  `json:"final_seq"`
	FinalHead    vecHex                  `json:"final_head"`
	FinalMembers []vecMember             `json:"final_members"`
	FinalRekeyed []vecMember             `json:"final_rekeyed"`
}

// vecRekeyed lists Chain.Rekeyed for every member, sorted by user id.
func vecRekeyed(c *protocol.Chain) []vecMember {
	out := []vecMember{}
	for _, m := range c.Members() {
		if k, r, ok := c.Rekeyed(m.User); ok {
			out = append(out, vecMember{User: m.User, Identity: k[:], Role: uint8(r)})
		}
	}
	return out
}

// vecSign signs rec as a vector names it: with a cosigner, a co-signed
// rekey.
func vecSign(keys map[string]*IdentityPrivateKey, signer, cosigner string, rec *protocol.Record) error {
	if keys[signer] == nil || (cosigner != "" && keys[cosigner] == nil) {
		return fmt.Errorf("no key %q or %q", signer, cosigner)
	}
	if cosigner != "" {
		SignRekey(keys[signer], keys[cosigner], rec)
	} else {
		SignRecord(keys[signer], rec)
	}
	return nil
}

func vecMembers(ms []protocol.Member) []vecMember {
	out := make([]vecMember, len(ms))
	for i, m := range ms {
		out[i] = vecMember{User: m.User, Identity: m.Identity[:], Role: uint8(m.Role)}
	}
	return out
}

// vecRecordOf rebuilds the record a vector describes, unsigned.
func vecRecordOf(conv protocol.ConversationID, v vecRecord) (*protocol.Record, error) {
	rec := &protocol.Record{Op: protocol.Op(v.Op), Conversation: conv, Seq: v.Seq, Time: v.Time, Author: v.Author}
	if len(v.Prev) != protocol.HashSize {
		return nil, fmt.Errorf("prev is %d bytes", len(v.Prev))
	}
	rec.Prev = [protocol.HashSize]byte(v.Prev)
	for _, m := range v.Members {
		id, err := protocol.ParseIdentityKey(m.Identity)
		if err != nil {
			return nil, err
		}
		rec.Members = append(rec.Members, protocol.Member{User: m.User, Identity: id, Role: protocol.Role(m.Role)})
	}
	rec.Users = append(rec.Users, v.Users...)
	return rec, nil
}

func vecGenMembership(t *testing.T) *vecMembershipFile {
	conv := vecConversation("membership")
	keys := map[string]*IdentityPrivateKey{}
	v := vecChain{Name: "create, add, role, remove, leave, rekey, role, add, rekey-cosigned, forged rekey, rekey back, add", Conversation: conv}
	for _, name := range []string{"alice", "bob", "carol", "dave", "bob new", "eve", "alice new", "server"} {
		k := vecIdentity(t, name)
		keys[name] = k
		v.Keys = append(v.Keys, vecKey{Name: name, Seed: k.Seed(), Public: vecPub(k)})
	}
	user := func(key string) protocol.UserID {
		if key == "server" {
			return vecUser("alice") // the server forges a rekey of alice
		}
		return vecUser(strings.TrimSuffix(key, " new"))
	}
	mem := func(key string, role protocol.Role) protocol.Member {
		return protocol.Member{User: user(key), Identity: keys[key].Public(), Role: role}
	}
	steps := []struct {
		op       protocol.Op
		author   string
		signer   string
		members  []protocol.Member
		users    []protocol.UserID
		cosigner string
	}{
		{protocol.OpCreate, "alice", "alice", []protocol.Member{mem("alice", protocol.RoleAdmin), mem("bob", protocol.RoleMember), mem("carol", protocol.RoleMember)}, nil, ""},
		{protocol.OpAdd, "alice", "alice", []protocol.Member{mem("dave", protocol.RoleMember), mem("eve", protocol.RoleMember)}, nil, ""},
		{protocol.OpRole, "alice", "alice", []protocol.Member{mem("carol", protocol.RoleAdmin)}, nil, ""},
		{protocol.OpRemove, "carol", "carol", nil, []protocol.UserID{user("dave")}, ""},
		{protocol.OpLeave, "eve", "eve", nil, nil, ""},
		{protocol.OpRekey, "bob", "bob new", []protocol.Member{mem("bob new", protocol.RoleMember)}, nil, ""},
		{protocol.OpRole, "alice", "alice", []protocol.Member{mem("bob new", protocol.RoleAdmin)}, nil, ""},
		{protocol.OpAdd, "bob", "bob new", []protocol.Member{mem("dave", protocol.RoleMember)}, nil, ""},
		{protocol.OpRekeyCosigned, "alice", "alice new", []protocol.Member{mem("alice new", protocol.RoleAdmin)}, nil, "alice"},
		{protocol.OpRekey, "alice", "server", []protocol.Member{mem("server", protocol.RoleMember)}, nil, ""},
		{protocol.OpRekeyCosigned, "alice", "alice new", []protocol.Member{mem("alice new", protocol.RoleAdmin)}, nil, "alice new"},
		{protocol.OpAdd, "alice", "alice new", []protocol.Member{mem("eve", protocol.RoleMember)}, nil, ""},
	}
	var chain *protocol.Chain
	var prev [protocol.HashSize]byte
	for i, s := range steps {
		rec := &protocol.Record{
			Op: s.op, Conversation: conv, Seq: uint64(i), Prev: prev, Time: vecNowMS + int64(i)*60_000,
			Author: user(s.author), Members: s.members, Users: s.users,
		}
		if err := vecSign(keys, s.signer, s.cosigner, rec); err != nil {
			t.Fatal(err)
		}
		var err error
		if i == 0 {
			chain, err = protocol.Genesis(rec)
		} else {
			chain, err = chain.Apply(rec)
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		h := rec.Hash()
		v.Records = append(v.Records, vecRecord{
			Op: uint8(s.op), OpName: s.op.String(), Seq: rec.Seq, Prev: rec.Prev[:], Time: rec.Time,
			Author: rec.Author, Signer: s.signer, Cosigner: s.cosigner, Members: vecMembers(s.members), Users: append([]protocol.UserID{}, s.users...),
			SignedData: rec.SignedData(), Signature: rec.Signature[:], Encoded: rec.Marshal(), Hash: h[:],
		})
		if s.cosigner != "" {
			v.Records[i].CosignedData, v.Records[i].Cosignature = rec.CosignedData(), rec.Cosignature[:]
		}
		prev = h
	}
	v.FinalSeq, v.FinalHead, v.FinalMembers = chain.Seq, chain.Head[:], vecMembers(chain.Members())
	v.FinalRekeyed = vecRekeyed(chain)
	return &vecMembershipFile{vecHeader: vecHeader{vecMembershipDescription}, Vectors: []vecChain{v}}
}

func vecReplayMembership(t *testing.T, f *vecMembershipFile) {
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			keys := map[string]*IdentityPrivateKey{}
			for _, k := range v.Keys {
				id, err := IdentityFromSeed(k.Seed)
				if err != nil {
					t.Fatal(err)
				}
				vecEq(t, "key "+k.Name, vecPub(id), k.Public)
				keys[k.Name] = id
			}
			var chain *protocol.Chain
			var prev [protocol.HashSize]byte
			for i, rv := range v.Records {
				if rv.Seq != uint64(i) {
					t.Fatalf("record %d has seq %d", i, rv.Seq)
				}
				what := fmt.Sprintf("record %d (%s)", i, rv.OpName)
				if protocol.Op(rv.Op).String() != rv.OpName {
					t.Errorf("%s: op %d is %q", what, rv.Op, protocol.Op(rv.Op))
				}
				vecEq(t, what+" prev", prev[:], rv.Prev)
				rec, err := vecRecordOf(v.Conversation, rv)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if err := vecSign(keys, rv.Signer, rv.Cosigner, rec); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if rv.Cosigner != "" || rec.Op == protocol.OpRekeyCosigned {
					vecEq(t, what+" cosigned_data", rec.CosignedData(), rv.CosignedData)
					vecEq(t, what+" cosignature", rec.Cosignature[:], rv.Cosignature)
				}
				vecEq(t, what+" signed_data", rec.SignedData(), rv.SignedData)
				vecEq(t, what+" signature", rec.Signature[:], rv.Signature)
				vecEq(t, what+" encoded", rec.Marshal(), rv.Encoded)
				h := rec.Hash()
				vecEq(t, what+" hash", h[:], rv.Hash)
				parsed, err := protocol.ParseRecord(rv.Encoded)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				vecEq(t, what+" encoded after parsing", parsed.Marshal(), rv.Encoded)
				if i == 0 {
					chain, err = protocol.Genesis(parsed)
				} else {
					chain, err = chain.Apply(parsed)
				}
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				prev = parsed.Hash()
			}
			if chain.Seq != v.FinalSeq {
				t.Errorf("final_seq: chain at %d, file says %d", chain.Seq, v.FinalSeq)
			}
			vecEq(t, "final_head", chain.Head[:], v.FinalHead)
			got, _ := vecEncode(vecMembers(chain.Members()))
			want, _ := vecEncode(v.FinalMembers)
			if !bytes.Equal(got, want) {
				t.Errorf("final_members:\n  computed %s\n  file     %s", got, want)
			}
			got, _ = vecEncode(vecRekeyed(chain))
			want, _ = vecEncode(v.FinalRekeyed)
			if !bytes.Equal(got, want) {
				t.Errorf("final_rekeyed:\n  computed %s\n  file     %s", got, want)
			}
		})
	}
}

// ---- epoch.json ----

const vecEpochDescription = `An epoch distribution (protocol.md §7) to three devices. All integers are big-endian, all byte strings hex. ` +
	`Inputs: membership_records (record encodings as in membership.json; verifying them from the genesis gives chain_seq and chain_head, the seq and hash of the last one); ` +
	`the creator (user, device, Ed25519 identity seed); epoch; time (Unix milliseconds); and bundles, the claimed bundles (encoding as in prekey.json) in the order the creator sealed to them. ` +
	`Each bundle's target pre-key, at now = time / 1000 (integer division), is its one-time pre-key if it carries one; else its signed pre-key, unless now - created of the signed pre-key > 3196800 (37 days), then its last-resort key. ` +
	`Here bob's device is sealed to a one-time pre-key, the creator's own device to its signed pre-key (exactly 37 days old, still used) and carol's to its last-resort key (her signed pre-key is 37 days and 1 second old). ` +
	`recipients lists the entries in canonical order (ascending user id, then device id); prekey_kind names the target's kind and kem_seed is the X-Wing seed of its private half. ` +
	`For each recipient: info = "sandi v1 epoch key" || 0x01 || conversation || epoch (u64) || chain_head || creator user || creator device || recipient user || recipient device || prekey_id (u32); ` +
	`enc (1120) || ciphertext (48) = HPKE base-mode single-shot Seal (RFC 9180; KEM X-Wing 0x647a, KDF HKDF-SHA256 0x0001, AEAD ChaCha20-Poly1305 0x0003; empty aad) of epoch_secret to the target public key with info. ` +
	`With the recorded ephemeral values the seal is deterministic: (ss_M, ct_M) = ML-KEM-768.Encaps_internal(pk_M, ephemeral_mlkem_m) (FIPS 203 Algorithm 17), ct_X = X25519(ephemeral_x25519_sk, 9), ss_X = X25519(ephemeral_x25519_sk, pk_X), ` +
	`kem_shared_secret = SHA3-256(ss_M || ss_X || ct_X || pk_X || the X-Wing label, the 6 bytes 5c2e2f2f5e5c), enc = ct_M || ct_X, and kem_shared_secret is the shared_secret of the HPKE key schedule. ` +
	`commitment = HKDF-SHA256(ikm = epoch_secret, no salt, info = "sandi v1 epoch commitment" || 0x01 || conversation || epoch (u64), 32 bytes). ` +
	`signed_data = "sandi v1 distribution" || the encoding without its signature; signature = Ed25519 signature of signed_data by the creator's identity seed; ` +
	`encoded = 0x01 || conversation || epoch (u64) || chain_seq (u64) || chain_head || creator user || creator device || time (u64) || commitment || recipient count (u16) || recipients, each user || device || prekey_id (u32) || enc || ciphertext || signature (64). ` +
	`Implementation-independent: each recipient opens its entry with kem_seed and info and gets epoch_secret, which matches commitment; the seal redone from the ephemeral values gives kem_shared_secret, enc and ciphertext byte for byte; signed_data, signature and encoded follow from the rest. ` +
	`Go-specific: epoch_secret and the ephemeral values are what Go's crypto/rand yielded under testing/cryptotest.SetGlobalRandom(t, go_global_random_seed) (the epoch secret first, then for each bundle in order the X25519 ephemeral secret and the ML-KEM randomness); ` +
	`calling secret.NewDistribution on these inputs after that call reproduces encoded exactly, for as long as Go draws randomness the same way.`

type vecEpochFile struct {
	vecHeader
	Vectors []vecEpoch `json:"vectors"`
}

func (f *vecEpochFile) sizes() map[string]int {
	n := map[string]int{"distributions": len(f.Vectors)}
	for _, v := range f.Vectors {
		if len(v.Recipients) == 0 || len(v.Bundles) == 0 {
			n["recipients"] = 0
		}
	}
	return n
}

type vecEpochRecipient struct {
	User            protocol.UserID   `json:"user"`
	Device          protocol.DeviceID `json:"device"`
	PreKeyID        uint32            `json:"prekey_id"`
	PreKeyKind      string            `json:"prekey_kind"`
	KEMSeed         vecHex            `json:"kem_seed"`
	Info            vecHex            `json:"info"`
	EphemeralX25519 vecHex            `json:"ephemeral_x25519_sk"`
	EphemeralMLKEM  vecHex            `json:"ephemeral_mlkem_m"`
	KEMSharedSecret vecHex            `json:"kem_shared_secret"`
	Enc             vecHex            `json:"enc"`
	Ciphertext      vecHex            `json:"ciphertext"`
}

type vecEpoch struct {
	Name                string                  `json:"name"`
	GoRandomSeed        uint64                  `json:"go_global_random_seed"`
	MembershipRecords   []vecHex                `json:"membership_records"`
	ChainSeq            uint64                  `json:"chain_seq"`
	ChainHead           vecHex                  `json:"chain_head"`
	Conversation        protocol.ConversationID `json:"conversation"`
	Epoch               uint64                  `json:"epoch"`
	Time                int64                   `json:"time"`
	CreatorUser         protocol.UserID         `json:"creator_user"`
	CreatorDevice       protocol.DeviceID       `json:"creator_device"`
	CreatorIdentitySeed vecHex                  `json:"creator_identity_seed"`
	Bundles             []vecHex                `json:"bundles"`
	EpochSecret         vecHex                  `json:"epoch_secret"`
	Commitment          vecHex                  `json:"commitment"`
	Recipients          []vecEpochRecipient     `json:"recipients"`
	SignedData          vecHex                  `json:"signed_data"`
	Signature           vecHex                  `json:"signature"`
	Encoded             vecHex                  `json:"encoded"`
}

func vecGenEpoch(t *testing.T) *vecEpochFile {
	const seed = 0x5a4d_0001 // below 2^53, so every JSON reader keeps it exact
	conv := vecConversation("epoch")
	ids := map[string]*IdentityPrivateKey{"alice": vecIdentity(t, "alice"), "bob": vecIdentity(t, "bob"), "carol": vecIdentity(t, "carol")}
	mem := func(name string, role protocol.Role) protocol.Member {
		return protocol.Member{User: vecUser(name), Identity: ids[name].Public(), Role: role}
	}
	genesis := &protocol.Record{Op: protocol.OpCreate, Conversation: conv, Time: vecNowMS - 3_600_000, Author: vecUser("alice"),
		Members: []protocol.Member{mem("alice", protocol.RoleAdmin), mem("bob", protocol.RoleMember)}}
	SignRecord(ids["alice"], genesis)
	add := &protocol.Record{Op: protocol.OpAdd, Conversation: conv, Seq: 1, Prev: genesis.Hash(), Time: vecNowMS - 60_000, Author: vecUser("alice"),
		Members: []protocol.Member{mem("carol", protocol.RoleMember)}}
	SignRecord(ids["alice"], add)
	chain, err := protocol.VerifyChain([]*protocol.Record{genesis, add})
	if err != nil {
		t.Fatal(err)
	}

	// Claimed bundles, in the order the creator seals: bob, carol, alice.
	type dev struct {
		user, device string
		keys         []vecKeySpec
		want         protocol.PreKeyKind
	}
	devs := []dev{
		{"bob", "bob phone", []vecKeySpec{{protocol.SignedPreKey, 1, vecNow - 3600}, {protocol.LastResortPreKey, 2, vecNow - 3600}, {protocol.OneTimePreKey, 7, vecNow - 3600}}, protocol.OneTimePreKey},
		{"carol", "carol laptop", []vecKeySpec{{protocol.SignedPreKey, 5, vecNow - protocol.SignedPreKeyMaxAge - 1}, {protocol.LastResortPreKey, 6, vecNow - 90*86400}}, protocol.LastResortPreKey},
		{"alice", "alice laptop", []vecKeySpec{{protocol.SignedPreKey, 1, vecNow - protocol.SignedPreKeyMaxAge}, {protocol.LastResortPreKey, 2, vecNow - protocol.SignedPreKeyMaxAge}}, protocol.SignedPreKey},
	}
	v := vecEpoch{
		Name: "one-time, signed and last-resort targets", GoRandomSeed: seed,
		MembershipRecords: []vecHex{genesis.Marshal(), add.Marshal()}, ChainSeq: chain.Seq, ChainHead: chain.Head[:],
		Conversation: conv, Epoch: 2, Time: vecNowMS,
		CreatorUser: vecUser("alice"), CreatorDevice: vecDevice("alice laptop"), CreatorIdentitySeed: ids["alice"].Seed(),
	}
	req := EpochRequest{Chain: chain, Epoch: v.Epoch, Creator: protocol.DeviceRef{User: v.CreatorUser, Device: v.CreatorDevice}, Time: v.Time}
	privs := map[protocol.DeviceRef]PreKeyPrivates{}
	for _, d := range devs {
		b, p, err := vecMakeBundle(ids[d.user], vecUser(d.user), vecDevice(d.device), vecBundleKeys(d.device, d.keys...))
		if err != nil {
			t.Fatal(err)
		}
		if k := b.Target(v.Time / 1000); k.Kind != d.want {
			t.Fatalf("%s: target is the %s pre-key, want %s", d.device, k.Kind, d.want)
		}
		req.Bundles = append(req.Bundles, b)
		privs[protocol.DeviceRef{User: b.User, Device: b.Device}] = p
		v.Bundles = append(v.Bundles, b.Marshal())
	}

	cryptotest.SetGlobalRandom(t, seed)
	d, secret, err := NewDistribution(ids["alice"], req)
	if err != nil {
		t.Fatal(err)
	}
	stream := vecRandomStream(seed, protocol.EpochSecretSize+64*len(req.Bundles))
	if !bytes.Equal(secret[:], stream[:protocol.EpochSecretSize]) {
		t.Fatal("the epoch secret is not the first bytes of the SetGlobalRandom stream: Go's randomness changed, update vecRandomStream")
	}
	eph := vecEphemerals(stream[protocol.EpochSecretSize:], len(req.Bundles))
	ephOf := map[protocol.DeviceRef]vecEphemeral{}
	for i, b := range req.Bundles {
		ephOf[protocol.DeviceRef{User: b.User, Device: b.Device}] = eph[i]
	}
	v.EpochSecret, v.Commitment = secret[:], d.Commitment[:]
	for i := range d.Recipients {
		e := &d.Recipients[i]
		kem := privs[e.DeviceRef][e.PreKeyID]
		info := protocol.EpochKeyInfo(d.Conversation, d.Epoch, d.ChainHead, d.Creator, e.DeviceRef, e.PreKeyID)
		x := ephOf[e.DeviceRef]
		enc, ct, ss, err := vecSealDerand(kem.Public(), info, secret[:], x.m, x.skX)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, e.Enc[:]) || !bytes.Equal(ct, e.Ciphertext[:]) {
			t.Fatalf("%s: the derandomized seal does not reproduce crypto/hpke's: Go's randomness use changed, update vecRandomStream/vecEphemerals", e.Device)
		}
		var kind protocol.PreKeyKind
		for _, b := range req.Bundles {
			if b.User == e.User && b.Device == e.Device {
				kind = b.PreKeyByID(e.PreKeyID).Kind
			}
		}
		v.Recipients = append(v.Recipients, vecEpochRecipient{
			User: e.User, Device: e.Device, PreKeyID: e.PreKeyID, PreKeyKind: kind.String(), KEMSeed: kem.Seed(),
			Info: info, EphemeralX25519: x.skX, EphemeralMLKEM: x.m, KEMSharedSecret: ss, Enc: enc, Ciphertext: ct,
		})
	}
	v.SignedData, v.Signature, v.Encoded = d.SignedData(), d.Signature[:], d.Marshal()
	return &vecEpochFile{vecHeader: vecHeader{vecEpochDescription}, Vectors: []vecEpoch{v}}
}

func vecReplayEpoch(t *testing.T, f *vecEpochFile) {
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			var records []*protocol.Record
			for i, b := range v.MembershipRecords {
				rec, err := protocol.ParseRecord(b)
				if err != nil {
					t.Fatalf("membership record %d: %v", i, err)
				}
				records = append(records, rec)
			}
			chain, err := protocol.VerifyChain(records)
			if err != nil {
				t.Fatal(err)
			}
			if chain.Seq != v.ChainSeq || chain.Conversation != v.Conversation {
				t.Errorf("chain at %d of %s, file says %d of %s", chain.Seq, chain.Conversation, v.ChainSeq, v.Conversation)
			}
			vecEq(t, "chain_head", chain.Head[:], v.ChainHead)
			creator, err := IdentityFromSeed(v.CreatorIdentitySeed)
			if err != nil {
				t.Fatal(err)
			}
			creatorRef := protocol.DeviceRef{User: v.CreatorUser, Device: v.CreatorDevice}
			var bundles []*protocol.Bundle
			for i, b := range v.Bundles {
				bundle, err := protocol.ParseBundle(b)
				if err != nil {
					t.Fatalf("bundle %d: %v", i, err)
				}
				if err := bundle.Verify(); err != nil {
					t.Fatalf("bundle %d: %v", i, err)
				}
				bundles = append(bundles, bundle)
			}
			if len(v.EpochSecret) != protocol.EpochSecretSize {
				t.Fatalf("epoch_secret is %d bytes", len(v.EpochSecret))
			}
			secret := EpochSecret(v.EpochSecret)
			c, err := Commitment(&secret, v.Conversation, v.Epoch)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "commitment", c[:], v.Commitment)

			// The distribution rebuilt from the file's values, then signed.
			d := &protocol.Distribution{
				Conversation: v.Conversation, Epoch: v.Epoch, ChainSeq: chain.Seq, ChainHead: chain.Head,
				Creator: creatorRef, Time: v.Time, Commitment: c,
			}
			var devices []protocol.DeviceRef
			for _, r := range v.Recipients {
				e := protocol.Recipient{DeviceRef: protocol.DeviceRef{User: r.User, Device: r.Device}, PreKeyID: r.PreKeyID}
				copy(e.Enc[:], r.Enc)
				copy(e.Ciphertext[:], r.Ciphertext)
				d.Recipients = append(d.Recipients, e)
				devices = append(devices, e.DeviceRef)
			}
			d.Signature = creator.Sign(d.SignedData())
			vecEq(t, "signed_data", d.SignedData(), v.SignedData)
			vecEq(t, "signature", d.Signature[:], v.Signature)
			vecEq(t, "encoded", d.Marshal(), v.Encoded)
			parsed, err := protocol.ParseDistribution(v.Encoded)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "encoded after parsing", parsed.Marshal(), v.Encoded)
			if err := parsed.Verify(chain); err != nil {
				t.Error(err)
			}
			if len(bundles) != len(v.Recipients) {
				t.Errorf("%d bundles, %d recipients", len(bundles), len(v.Recipients))
			}

			// (a) Every recipient opens its entry with its KEM seed.
			for _, r := range v.Recipients {
				self := protocol.DeviceRef{User: r.User, Device: r.Device}
				what := "recipient " + r.Device.String()
				var bundle *protocol.Bundle
				for _, b := range bundles {
					if b.User == r.User && b.Device == r.Device {
						bundle = b
					}
				}
				if bundle == nil {
					t.Errorf("%s: no bundle", what)
					continue
				}
				target := bundle.Target(v.Time / 1000)
				if target.ID != r.PreKeyID || target.Kind.String() != r.PreKeyKind {
					t.Errorf("%s: target is %s pre-key %d, file says %s pre-key %d", what, target.Kind, target.ID, r.PreKeyKind, r.PreKeyID)
				}
				kem, err := KEMKeyFromSeed(r.KEMSeed)
				if err != nil {
					t.Fatal(err)
				}
				vecEq(t, what+" kem_seed's public key", kem.Public().Bytes(), target.Public.Bytes())
				vecEq(t, what+" info", protocol.EpochKeyInfo(v.Conversation, v.Epoch, chain.Head, creatorRef, self, r.PreKeyID), r.Info)
				enc, ct, ss, err := vecSealDerand(kem.Public(), r.Info, v.EpochSecret, r.EphemeralMLKEM, r.EphemeralX25519)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				vecEq(t, what+" kem_shared_secret", ss, r.KEMSharedSecret)
				vecEq(t, what+" enc", enc, r.Enc)
				vecEq(t, what+" ciphertext", ct, r.Ciphertext)
				pt, err := kem.open(r.Info, r.Enc, r.Ciphertext)
				if err != nil {
					t.Errorf("%s: HPKE open: %v", what, err)
				}
				vecEq(t, what+" opened epoch secret", pt, v.EpochSecret)
				s, err := OpenDistribution(OpenRequest{
					Distribution: parsed, Chain: chain, Devices: devices, Self: self,
					PreKey: func(id uint32) (*KEMPrivateKey, error) {
						if id != r.PreKeyID {
							return nil, fmt.Errorf("no pre-key %d", id)
						}
						return kem, nil
					},
				})
				if err != nil {
					t.Errorf("%s: open distribution: %v", what, err)
					continue
				}
				vecEq(t, what+" epoch secret from OpenDistribution", s[:], v.EpochSecret)
			}

			// (b) Go-specific: the same inputs under the same global random
			// stream give the same bytes.
			cryptotest.SetGlobalRandom(t, v.GoRandomSeed)
			d2, s2, err := NewDistribution(creator, EpochRequest{Chain: chain, Epoch: v.Epoch, Creator: creatorRef, Time: v.Time, Bundles: bundles})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s2[:], v.EpochSecret) || !bytes.Equal(d2.Marshal(), v.Encoded) {
				t.Errorf("NewDistribution under cryptotest.SetGlobalRandom(t, %#x) no longer reproduces the file; if Go changed how it draws randomness, regenerate with go generate ./protocol/secret", v.GoRandomSeed)
			}
		})
	}
}

// ---- ratchet.json ----

const vecRatchetDescription = `Sender chains (protocol.md §8.1, §8.2). All integers are big-endian, all byte strings hex. ` +
	`chain_key_info = "sandi v1 sender chain" || 0x01 || conversation (16) || epoch (u64) || sender_user (16) || sender_device (16); ` +
	`chain_keys[0] (chain key 0) = HKDF-SHA256(ikm = epoch_secret, no salt, info = chain_key_info, 32 bytes) (RFC 5869 Extract then Expand); ` +
	`then for counter i = 0, 1, ...: message_keys[i] = HKDF-Expand-SHA256(prk = chain_keys[i], info = "sandi v1 message key" || i (u32), 44 bytes) ` +
	`and chain_keys[i+1] = HKDF-Expand-SHA256(prk = chain_keys[i], info = "sandi v1 chain step", 32 bytes). ` +
	`A message key is the ChaCha20-Poly1305 key (its first 32 bytes) || the nonce (its last 12). ` +
	`chain_keys and message_keys list counters 0 to 20. Every value here is implementation-independent.`

type vecRatchetFile struct {
	vecHeader
	Vectors []vecRatchet `json:"vectors"`
}

func (f *vecRatchetFile) sizes() map[string]int {
	n := map[string]int{"chains": len(f.Vectors)}
	for _, v := range f.Vectors {
		if len(v.MessageKeys) == 0 {
			n["message keys"] = 0
		}
	}
	return n
}

type vecRatchet struct {
	Name         string                  `json:"name"`
	EpochSecret  vecHex                  `json:"epoch_secret"`
	Conversation protocol.ConversationID `json:"conversation"`
	Epoch        uint64                  `json:"epoch"`
	SenderUser   protocol.UserID         `json:"sender_user"`
	SenderDevice protocol.DeviceID       `json:"sender_device"`
	ChainKeyInfo vecHex                  `json:"chain_key_info"`
	ChainKeys    []vecHex                `json:"chain_keys"`
	MessageKeys  []vecHex                `json:"message_keys"`
}

const vecRatchetSteps = 21

func vecGenRatchet(t *testing.T) *vecRatchetFile {
	f := &vecRatchetFile{vecHeader: vecHeader{vecRatchetDescription}}
	for _, c := range []struct {
		name, secret, conv string
		epoch              uint64
		user, device       string
	}{
		{"alice's chain in epoch 1", "ratchet epoch secret 1", "ratchet", 1, "alice", "alice laptop"},
		{"bob's chain in the same epoch", "ratchet epoch secret 1", "ratchet", 1, "bob", "bob phone"},
		{"a large epoch number", "ratchet epoch secret 2", "ratchet", 1<<40 + 5, "alice", "alice phone"},
	} {
		secret := EpochSecret(vecSeed(c.secret))
		sender := protocol.DeviceRef{User: vecUser(c.user), Device: vecDevice(c.device)}
		conv := vecConversation(c.conv)
		ck, err := ChainKey(&secret, conv, c.epoch, sender)
		if err != nil {
			t.Fatal(err)
		}
		mks, err := MessageKeys(ck, vecRatchetSteps)
		if err != nil {
			t.Fatal(err)
		}
		v := vecRatchet{
			Name: c.name, EpochSecret: secret[:], Conversation: conv, Epoch: c.epoch, SenderUser: sender.User, SenderDevice: sender.Device,
			ChainKeyInfo: []byte(senderChainInfo(conv, c.epoch, sender)),
		}
		for i := range vecRatchetSteps {
			v.ChainKeys = append(v.ChainKeys, bytes.Clone(ck[:]))
			v.MessageKeys = append(v.MessageKeys, bytes.Clone(mks[i][:]))
			_, next, err := step(&ck, uint32(i))
			if err != nil {
				t.Fatal(err)
			}
			ck = next
		}
		f.Vectors = append(f.Vectors, v)
	}
	return f
}

func vecReplayRatchet(t *testing.T, f *vecRatchetFile) {
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			if len(v.ChainKeys) != len(v.MessageKeys) {
				t.Fatalf("%d chain keys, %d message keys", len(v.ChainKeys), len(v.MessageKeys))
			}
			sender := protocol.DeviceRef{User: v.SenderUser, Device: v.SenderDevice}
			vecEq(t, "chain_key_info", []byte(senderChainInfo(v.Conversation, v.Epoch, sender)), v.ChainKeyInfo)
			secret := EpochSecret(v.EpochSecret)
			ck, err := ChainKey(&secret, v.Conversation, v.Epoch, sender)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "chain key 0", ck[:], v.ChainKeys[0])
			mks, err := MessageKeys(ck, len(v.MessageKeys))
			if err != nil {
				t.Fatal(err)
			}
			for i := range mks {
				vecEq(t, fmt.Sprintf("message key %d", i), mks[i][:], v.MessageKeys[i])
			}
			// The recipe of the description, step by step, with crypto/hkdf.
			k, err := hkdf.Key(sha256.New, v.EpochSecret, nil, string(v.ChainKeyInfo), 32)
			if err != nil {
				t.Fatal(err)
			}
			for i := range v.MessageKeys {
				vecEq(t, fmt.Sprintf("chain key %d", i), k, v.ChainKeys[i])
				info := binary.BigEndian.AppendUint32([]byte(protocol.LabelMessageKey), uint32(i))
				mk, err := hkdf.Expand(sha256.New, k, string(info), 44)
				if err != nil {
					t.Fatal(err)
				}
				vecEq(t, fmt.Sprintf("message key %d from HKDF", i), mk, v.MessageKeys[i])
				if k, err = hkdf.Expand(sha256.New, k, protocol.LabelChainStep, 32); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// ---- envelope.json ----

const vecEnvelopeDescription = `Message envelopes (protocol.md §9). All integers are big-endian, all byte strings hex. ` +
	`The sender's chain starts from epoch_secret, conversation, epoch and the sender device as in ratchet.json; the sender sends counters 0, 1, 2, ... in turn; ` +
	`only the envelopes listed are recorded (the others carried empty plaintexts), so a receiver skips the missing counters. ` +
	`For each envelope: message_key is the chain's message key for counter (ratchet.json); ` +
	`padded_length = max(64, padme(len(plaintext) + 1)) as in padding.json, and the padded plaintext is plaintext || 0x80 || zero bytes up to padded_length; ` +
	`header = 0x01 || conversation (16) || epoch (u64) || sender_user (16) || sender_device (16) || counter (u32); associated_data = "sandi v1 envelope data" || header; ` +
	`ciphertext = ChaCha20-Poly1305 (RFC 8439) with key message_key[0:32] and nonce message_key[32:44] of the padded plaintext with associated_data (padded_length + 16 bytes); ` +
	`signed_data = "sandi v1 envelope signature" || header || len(ciphertext) (u32) || ciphertext; signature = Ed25519 signature of signed_data by sender_identity_seed; ` +
	`encoded = header || len(ciphertext) (u32) || ciphertext || signature. ` +
	`A receiver that derives the epoch afresh from epoch_secret for the devices (sender, receiver) verifies and decrypts every envelope, in order or not, to its plaintext. ` +
	`Every value here is implementation-independent.`

type vecEnvelopeFile struct {
	vecHeader
	Vectors []vecEnvelopeSet `json:"vectors"`
}

func (f *vecEnvelopeFile) sizes() map[string]int {
	n := map[string]int{"envelope sets": len(f.Vectors)}
	for _, v := range f.Vectors {
		if len(v.Envelopes) == 0 {
			n["envelopes"] = 0
		}
	}
	return n
}

type vecEnvelope struct {
	Counter        uint32 `json:"counter"`
	Plaintext      vecHex `json:"plaintext"`
	PaddedLength   int    `json:"padded_length"`
	MessageKey     vecHex `json:"message_key"`
	AssociatedData vecHex `json:"associated_data"`
	Ciphertext     vecHex `json:"ciphertext"`
	SignedData     vecHex `json:"signed_data"`
	Signature      vecHex `json:"signature"`
	Encoded        vecHex `json:"encoded"`
}

type vecEnvelopeSet struct {
	Name               string                  `json:"name"`
	EpochSecret        vecHex                  `json:"epoch_secret"`
	Conversation       protocol.ConversationID `json:"conversation"`
	Epoch              uint64                  `json:"epoch"`
	SenderUser         protocol.UserID         `json:"sender_user"`
	SenderDevice       protocol.DeviceID       `json:"sender_device"`
	SenderIdentitySeed vecHex                  `json:"sender_identity_seed"`
	SenderIdentity     vecHex                  `json:"sender_identity_public"`
	ReceiverUser       protocol.UserID         `json:"receiver_user"`
	ReceiverDevice     protocol.DeviceID       `json:"receiver_device"`
	Envelopes          []vecEnvelope           `json:"envelopes"`
}

func vecGenEnvelopes(t *testing.T) *vecEnvelopeFile {
	secret := EpochSecret(vecSeed("envelope epoch secret"))
	id := vecIdentity(t, "alice")
	v := vecEnvelopeSet{
		Name: "empty, 100-byte, 5000-byte and 63-byte plaintexts", EpochSecret: secret[:], Conversation: vecConversation("envelope"), Epoch: 4,
		SenderUser: vecUser("alice"), SenderDevice: vecDevice("alice laptop"), SenderIdentitySeed: id.Seed(), SenderIdentity: vecPub(id),
		ReceiverUser: vecUser("bob"), ReceiverDevice: vecDevice("bob phone"),
	}
	// Counters 2 to 4 are sent but not recorded. The last plaintext ends in
	// bytes that look like padding and exactly fills the 64-byte minimum.
	tricky := append(vecData("envelope 63", 60), 0x80, 0x00, 0x00)
	plaintexts := map[uint32][]byte{0: {}, 1: vecData("envelope 100", 100), 5: vecData("envelope 5000", 5000), 6: tricky}
	envs, err := vecSendEnvelopes(&v, id, plaintexts)
	if err != nil {
		t.Fatal(err)
	}
	sender := protocol.DeviceRef{User: v.SenderUser, Device: v.SenderDevice}
	ck, err := ChainKey(&secret, v.Conversation, v.Epoch, sender)
	if err != nil {
		t.Fatal(err)
	}
	mks, err := MessageKeys(ck, len(envs))
	if err != nil {
		t.Fatal(err)
	}
	for i, env := range envs {
		pt, ok := plaintexts[uint32(i)]
		if !ok {
			continue
		}
		v.Envelopes = append(v.Envelopes, vecEnvelope{
			Counter: env.Counter, Plaintext: pt, PaddedLength: PaddedLen(len(pt)), MessageKey: mks[i][:],
			AssociatedData: env.Header.AssociatedData(), Ciphertext: env.Ciphertext,
			SignedData: env.SignedData(), Signature: env.Signature[:], Encoded: env.Marshal(),
		})
	}
	return &vecEnvelopeFile{vecHeader: vecHeader{vecEnvelopeDescription}, Vectors: []vecEnvelopeSet{v}}
}

// vecSendEnvelopes encrypts, with a fresh sending epoch, one message per
// counter up to the largest key of plaintexts; counters missing from
// plaintexts carry an empty message.
func vecSendEnvelopes(v *vecEnvelopeSet, id *IdentityPrivateKey, plaintexts map[uint32][]byte) ([]*protocol.Envelope, error) {
	secret := EpochSecret(v.EpochSecret)
	sender := protocol.DeviceRef{User: v.SenderUser, Device: v.SenderDevice}
	receiver := protocol.DeviceRef{User: v.ReceiverUser, Device: v.ReceiverDevice}
	e, err := NewEpoch(&secret, v.Conversation, v.Epoch, sender, []protocol.DeviceRef{sender, receiver})
	if err != nil {
		return nil, err
	}
	var envs []*protocol.Envelope
	for i := range slices.Max(slices.Collect(maps.Keys(plaintexts))) + 1 {
		env, err := e.Encrypt(id, plaintexts[i])
		if err != nil {
			return nil, err
		}
		envs = append(envs, env)
	}
	return envs, nil
}

func vecReplayEnvelopes(t *testing.T, f *vecEnvelopeFile) {
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			id, err := IdentityFromSeed(v.SenderIdentitySeed)
			if err != nil {
				t.Fatal(err)
			}
			pub := id.Public()
			vecEq(t, "sender_identity_public", pub[:], v.SenderIdentity)
			sender := protocol.DeviceRef{User: v.SenderUser, Device: v.SenderDevice}
			receiver := protocol.DeviceRef{User: v.ReceiverUser, Device: v.ReceiverDevice}
			secret := EpochSecret(v.EpochSecret)
			ck, err := ChainKey(&secret, v.Conversation, v.Epoch, sender)
			if err != nil {
				t.Fatal(err)
			}
			plaintexts := map[uint32][]byte{}
			var parsed []*protocol.Envelope
			for _, ev := range v.Envelopes {
				what := fmt.Sprintf("counter %d", ev.Counter)
				if _, dup := plaintexts[ev.Counter]; dup {
					t.Fatalf("%s listed twice", what)
				}
				plaintexts[ev.Counter] = ev.Plaintext
				mks, err := MessageKeys(ck, int(ev.Counter)+1)
				if err != nil {
					t.Fatal(err)
				}
				mk := mks[ev.Counter]
				vecEq(t, what+" message_key", mk[:], ev.MessageKey)
				if n := PaddedLen(len(ev.Plaintext)); n != ev.PaddedLength {
					t.Errorf("%s padded_length: computed %d, file %d", what, n, ev.PaddedLength)
				}
				h := protocol.Header{Conversation: v.Conversation, Epoch: v.Epoch, Sender: sender, Counter: ev.Counter}
				vecEq(t, what+" associated_data", h.AssociatedData(), ev.AssociatedData)
				a, err := chacha20poly1305.New(mk[:32])
				if err != nil {
					t.Fatal(err)
				}
				padded := Pad(ev.Plaintext)
				if len(padded) != ev.PaddedLength {
					t.Errorf("%s: Pad gives %d bytes, file says %d", what, len(padded), ev.PaddedLength)
				}
				vecEq(t, what+" ciphertext", a.Seal(nil, mk[32:], padded, ev.AssociatedData), ev.Ciphertext)
				env := &protocol.Envelope{Header: h, Ciphertext: ev.Ciphertext}
				env.Signature = id.Sign(env.SignedData())
				vecEq(t, what+" signed_data", env.SignedData(), ev.SignedData)
				vecEq(t, what+" signature", env.Signature[:], ev.Signature)
				vecEq(t, what+" encoded", env.Marshal(), ev.Encoded)
				p, err := protocol.ParseEnvelope(ev.Encoded)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				vecEq(t, what+" encoded after parsing", p.Marshal(), ev.Encoded)
				parsed = append(parsed, p)
			}
			// Decrypt with a freshly derived epoch, in file order, then in
			// reverse order with another.
			for _, order := range []string{"in order", "in reverse"} {
				e, err := NewEpoch(&secret, v.Conversation, v.Epoch, receiver, []protocol.DeviceRef{sender, receiver})
				if err != nil {
					t.Fatal(err)
				}
				idx := make([]int, len(parsed))
				for i := range idx {
					idx[i] = i
				}
				if order == "in reverse" {
					slices.Reverse(idx)
				}
				for _, i := range idx {
					pt, err := e.Decrypt(parsed[i], pub)
					if err != nil {
						t.Errorf("%s: decrypt counter %d: %v", order, parsed[i].Counter, err)
						continue
					}
					vecEq(t, fmt.Sprintf("%s: plaintext of counter %d", order, parsed[i].Counter), pt, v.Envelopes[i].Plaintext)
				}
			}
			// The sender's side: a fresh sending epoch makes the same envelopes.
			envs, err := vecSendEnvelopes(&v, id, plaintexts)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range v.Envelopes {
				vecEq(t, fmt.Sprintf("counter %d re-encrypted", ev.Counter), envs[ev.Counter].Marshal(), ev.Encoded)
			}
		})
	}
}

// ---- safety.json ----

const vecSafetyDescription = `Safety numbers (protocol.md §10). All byte strings hex. ` +
	`For a party with user id U (16 bytes) and identity public key K (32 bytes, the Ed25519 public key of its seed): ` +
	`d_1 = SHA-256("sandi v1 safety number" || U || K), d_(i+1) = SHA-256(d_i || K), and the fingerprint is d_5200. ` +
	`digits(fp): for each of fp[0:5], fp[5:10], ..., fp[25:30], the 5 bytes as a big-endian integer mod 100000, written as 5 decimal digits (30 digits in all). ` +
	`With lo and hi the two parties' fingerprints in bytewise order: number = digits(lo) || digits(hi) (60 digits); number_formatted is number in 12 groups of 5 separated by single spaces; qr = 0x01 || lo || hi (65 bytes). ` +
	`Swapping a and b gives the same number and qr. Every value here is implementation-independent.`

type vecSafetyFile struct {
	vecHeader
	Vectors []vecSafety `json:"vectors"`
}

func (f *vecSafetyFile) sizes() map[string]int { return map[string]int{"pairs": len(f.Vectors)} }

type vecSafety struct {
	Name            string          `json:"name"`
	AUser           protocol.UserID `json:"a_user"`
	AIdentitySeed   vecHex          `json:"a_identity_seed"`
	AIdentity       vecHex          `json:"a_identity_public"`
	BUser           protocol.UserID `json:"b_user"`
	BIdentitySeed   vecHex          `json:"b_identity_seed"`
	BIdentity       vecHex          `json:"b_identity_public"`
	Number          string          `json:"number"`
	NumberFormatted string          `json:"number_formatted"`
	QR              vecHex          `json:"qr"`
}

func vecGenSafety(t *testing.T) *vecSafetyFile {
	f := &vecSafetyFile{vecHeader: vecHeader{vecSafetyDescription}}
	for _, c := range []struct{ name, a, aKey, b, bKey string }{
		{"alice and bob", "alice", "alice", "bob", "bob"},
		{"alice and carol", "alice", "alice", "carol", "carol"},
		{"bob and carol", "bob", "bob", "carol", "carol"},
		{"alice after an identity reset, and bob", "alice", "alice new", "bob", "bob"},
	} {
		a, b := vecIdentity(t, c.aKey), vecIdentity(t, c.bKey)
		n, qr := protocol.SafetyNumber(vecUser(c.a), a.Public(), vecUser(c.b), b.Public())
		f.Vectors = append(f.Vectors, vecSafety{
			Name: c.name, AUser: vecUser(c.a), AIdentitySeed: a.Seed(), AIdentity: vecPub(a),
			BUser: vecUser(c.b), BIdentitySeed: b.Seed(), BIdentity: vecPub(b),
			Number: n, NumberFormatted: protocol.FormatSafetyNumber(n), QR: qr,
		})
	}
	return f
}

func vecReplaySafety(t *testing.T, f *vecSafetyFile) {
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			a, err := IdentityFromSeed(v.AIdentitySeed)
			if err != nil {
				t.Fatal(err)
			}
			b, err := IdentityFromSeed(v.BIdentitySeed)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "a_identity_public", vecPub(a), v.AIdentity)
			vecEq(t, "b_identity_public", vecPub(b), v.BIdentity)
			n1, qr1 := protocol.SafetyNumber(v.AUser, a.Public(), v.BUser, b.Public())
			n2, qr2 := protocol.SafetyNumber(v.BUser, b.Public(), v.AUser, a.Public())
			if n1 != v.Number || n2 != v.Number {
				t.Errorf("number: computed %s (a, b) and %s (b, a), file %s", n1, n2, v.Number)
			}
			if len(v.Number) != 60 || strings.Trim(v.Number, "0123456789") != "" {
				t.Errorf("number %q is not 60 digits", v.Number)
			}
			if got := protocol.FormatSafetyNumber(v.Number); got != v.NumberFormatted {
				t.Errorf("number_formatted: computed %q, file %q", got, v.NumberFormatted)
			}
			vecEq(t, "qr (a, b)", qr1, v.QR)
			vecEq(t, "qr (b, a)", qr2, v.QR)
			if !protocol.SafetyQRMatches(v.QR, qr2) {
				t.Error("SafetyQRMatches refuses the file's qr")
			}
		})
	}
}

// ---- padding.json ----

const vecPaddingDescription = `Plaintext padding (protocol.md §9.3). padded_length(n) = max(64, padme(n + 1)), ` +
	`where padme(L) for L >= 2 rounds L up to a multiple of 2^(E - S), with E = floor(log2 L) and S = floor(log2 E) + 1. ` +
	`A padded plaintext is the plaintext || 0x80 || zero bytes up to padded_length; unpadding strips the trailing zeros and the 0x80 and refuses any other form. ` +
	`Every value here is implementation-independent.`

type vecPaddingFile struct {
	vecHeader
	Vectors []vecPadding `json:"vectors"`
}

func (f *vecPaddingFile) sizes() map[string]int { return map[string]int{"lengths": len(f.Vectors)} }

type vecPadding struct {
	Length       int `json:"length"`
	PaddedLength int `json:"padded_length"`
}

func vecGenPadding(t *testing.T) *vecPaddingFile {
	f := &vecPaddingFile{vecHeader: vecHeader{vecPaddingDescription}}
	lengths := []int{}
	for n := range 71 {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 71, 72, 100, 127, 128, 129, 255, 256, 1000, 1023, 1024, 4095, 4096, 5000, 10000, 65535, MaxPlaintext)
	for _, n := range lengths {
		f.Vectors = append(f.Vectors, vecPadding{Length: n, PaddedLength: PaddedLen(n)})
	}
	return f
}

func vecReplayPadding(t *testing.T, f *vecPaddingFile) {
	for _, v := range f.Vectors {
		if got := PaddedLen(v.Length); got != v.PaddedLength {
			t.Errorf("length %d: padded length %d, file %d", v.Length, got, v.PaddedLength)
		}
		p := bytes.Repeat([]byte{0xa5}, v.Length)
		padded := Pad(p)
		if len(padded) != v.PaddedLength || padded[v.Length] != 0x80 || bytes.Count(padded[v.Length+1:], []byte{0}) != v.PaddedLength-v.Length-1 {
			t.Errorf("length %d: Pad gives %d bytes, not %x || 80 || zeros to %d", v.Length, len(padded), p, v.PaddedLength)
			continue
		}
		if u, err := Unpad(padded); err != nil || !bytes.Equal(u, p) {
			t.Errorf("length %d: Unpad: %v", v.Length, err)
		}
	}
}

// ---- link.json ----

const vecLinkDescription = `Device linking (protocol.md §11). All byte strings hex. ` +
	`tmp_kem_public is the X-Wing public key of the new device's temporary seed tmp_kem_seed (derived as in prekey.json); ` +
	`link_key = 16 bytes the new device draws at random (fixed here); ` +
	`link_code = base32 (RFC 4648 alphabet, no padding) of link_key, 26 characters (the last carries 2 zero bits), written as groups of 5, 5, 5, 5 and 6 characters joined by "-". ` +
	`tag_data = "sandi v1 link request" || 0x01 || user (16) || device (16) || tmp_kem_public (1216); tag = HMAC-SHA256(link_key, tag_data). ` +
	`info = "sandi v1 device link" || 0x01 || user (16) || device (16) || SHA-256(tmp_kem_public) || link_key, for the account and the new device's id. ` +
	`sealed = enc (1120) || ciphertext (48): HPKE base-mode single-shot Seal (RFC 9180; KEM X-Wing 0x647a, KDF HKDF-SHA256 0x0001, AEAD ChaCha20-Poly1305 0x0003; empty aad) of identity_seed to tmp_kem_public with info, ` +
	`made deterministic by ephemeral_x25519_sk and ephemeral_mlkem_m exactly as described in epoch.json. ` +
	`Opening sealed with tmp_kem_seed and info gives identity_seed, whose Ed25519 public key is identity_public. ` +
	`A vector with an offer is version 2 of the sealed payload (a history transfer, §11 and §14.5): the plaintext sealed is identity_seed (32) || offer (89, encoded as in archive.json: 0x01 || archive id (16) || file key (32) || SHA-256 of the ciphertext (32) || size (u64)), ` +
	`so sealed = enc (1120) || ciphertext (137), 1257 bytes; opening it gives identity_seed followed by offer. ` +
	`Implementation-independent: everything but go_global_random_seed. ` +
	`Go-specific: the ephemeral values are what Go's crypto/rand yielded under testing/cryptotest.SetGlobalRandom(t, go_global_random_seed) (the X25519 ephemeral secret, then the ML-KEM randomness); ` +
	`secret.SealIdentity (secret.SealIdentityWith with the offer) called after that reproduces sealed exactly, for as long as Go draws randomness the same way.`

type vecLinkFile struct {
	vecHeader
	Vectors []vecLink `json:"vectors"`
}

func (f *vecLinkFile) sizes() map[string]int { return map[string]int{"links": len(f.Vectors)} }

type vecLink struct {
	Name            string            `json:"name"`
	GoRandomSeed    uint64            `json:"go_global_random_seed"`
	TmpKEMSeed      vecHex            `json:"tmp_kem_seed"`
	TmpKEMPublic    vecHex            `json:"tmp_kem_public"`
	LinkKey         vecHex            `json:"link_key"`
	LinkCode        string            `json:"link_code"`
	IdentitySeed    vecHex            `json:"identity_seed"`
	Identity        vecHex            `json:"identity_public"`
	User            protocol.UserID   `json:"user"`
	Device          protocol.DeviceID `json:"device"`
	TagData         vecHex            `json:"tag_data"`
	Tag             vecHex            `json:"tag"`
	Info            vecHex            `json:"info"`
	EphemeralX25519 vecHex            `json:"ephemeral_x25519_sk"`
	EphemeralMLKEM  vecHex            `json:"ephemeral_mlkem_m"`
	KEMSharedSecret vecHex            `json:"kem_shared_secret"`
	Offer           vecHex            `json:"offer,omitempty"`
	Sealed          vecHex            `json:"sealed"`
}

// vecLinkOffer is the fixed transfer offer of the version 2 link vector.
func vecLinkOffer() []byte {
	var o archive.Offer
	copy(o.ID[:], vecSeed("link offer archive id"))
	copy(o.Key[:], vecSeed("link offer file key"))
	copy(o.Digest[:], vecSeed("link offer digest"))
	o.Size = 1_048_593
	return o.Marshal()
}

func vecGenLink(t *testing.T) *vecLinkFile {
	f := &vecLinkFile{vecHeader: vecHeader{vecLinkDescription}}
	for i, c := range []struct {
		user, device string
		offer        []byte
	}{{"alice", "alice tablet", nil}, {"bob", "bob laptop", nil}, {"alice", "alice phone", vecLinkOffer()}} {
		seed := uint64(0x5a4d_0100 + i)
		tmp := vecKEM(t, "link "+c.device)
		id := vecIdentity(t, c.user)
		user, dev := vecUser(c.user), vecDevice(c.device)
		l := vecLinkKey(c.device)
		cryptotest.SetGlobalRandom(t, seed)
		sealed, err := SealIdentityWith(id, c.offer, tmp.Public(), user, dev, l)
		if err != nil {
			t.Fatal(err)
		}
		if want := SealedIdentityOfferSize(len(c.offer)); len(sealed) != want {
			t.Fatalf("%s: sealed is %d bytes, want %d", c.device, len(sealed), want)
		}
		x := vecEphemerals(vecRandomStream(seed, 64), 1)[0]
		info := linkInfo(user, dev, tmp.Public(), l)
		enc, ct, ss, err := vecSealDerand(tmp.Public(), info, slices.Concat(id.Seed(), c.offer), x.m, x.skX)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(slices.Concat(enc, ct), sealed) {
			t.Fatalf("%s: the derandomized seal does not reproduce crypto/hpke's: Go's randomness use changed, update vecRandomStream/vecEphemerals", c.device)
		}
		name := c.user + " links " + c.device
		if c.offer != nil {
			name += " with a history transfer offer"
		}
		f.Vectors = append(f.Vectors, vecLink{
			Name: name, GoRandomSeed: seed, Offer: c.offer,
			TmpKEMSeed: tmp.Seed(), TmpKEMPublic: tmp.Public().Bytes(), LinkKey: l.k[:], LinkCode: l.Code(),
			IdentitySeed: id.Seed(), Identity: vecPub(id), User: user, Device: dev,
			TagData: linkTagData(user, dev, tmp.Public()), Tag: l.Tag(user, dev, tmp.Public()), Info: info,
			EphemeralX25519: x.skX, EphemeralMLKEM: x.m, KEMSharedSecret: ss, Sealed: sealed,
		})
	}
	return f
}

func vecReplayLink(t *testing.T, f *vecLinkFile) {
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			tmp, err := KEMKeyFromSeed(v.TmpKEMSeed)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "tmp_kem_public", tmp.Public().Bytes(), v.TmpKEMPublic)
			var l LinkKey
			if len(v.LinkKey) != len(l.k) {
				t.Fatalf("link_key is %d bytes", len(v.LinkKey))
			}
			copy(l.k[:], v.LinkKey)
			if code := l.Code(); code != v.LinkCode {
				t.Errorf("link_code: computed %s, file %s", code, v.LinkCode)
			}
			typed := strings.ToLower(strings.ReplaceAll(v.LinkCode, "-", " "))
			if parsed, err := ParseLinkCode(typed); err != nil || !parsed.Equal(l) {
				t.Errorf("ParseLinkCode(%q): %v", typed, err)
			}
			vecEq(t, "tag_data", linkTagData(v.User, v.Device, tmp.Public()), v.TagData)
			m := hmac.New(sha256.New, v.LinkKey)
			m.Write(v.TagData)
			vecEq(t, "tag (HMAC-SHA256 of tag_data)", m.Sum(nil), v.Tag)
			vecEq(t, "tag", l.Tag(v.User, v.Device, tmp.Public()), v.Tag)
			if !l.Verifies(v.User, v.Device, tmp.Public(), v.Tag) {
				t.Error("the file's tag does not verify")
			}
			id, err := IdentityFromSeed(v.IdentitySeed)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "identity_public", vecPub(id), v.Identity)
			vecEq(t, "info", linkInfo(v.User, v.Device, tmp.Public(), l), v.Info)
			enc, ct, ss, err := vecSealDerand(tmp.Public(), v.Info, slices.Concat(v.IdentitySeed, v.Offer), v.EphemeralMLKEM, v.EphemeralX25519)
			if err != nil {
				t.Fatal(err)
			}
			vecEq(t, "kem_shared_secret", ss, v.KEMSharedSecret)
			vecEq(t, "sealed", slices.Concat(enc, ct), v.Sealed)
			if v.Offer == nil {
				if len(v.Sealed) != SealedIdentitySize {
					t.Errorf("sealed is %d bytes, want %d", len(v.Sealed), SealedIdentitySize)
				}
				opened, err := OpenIdentity(tmp, v.Sealed, v.User, v.Device, l)
				if err != nil {
					t.Fatal(err)
				}
				vecEq(t, "opened identity seed", opened.Seed(), v.IdentitySeed)
			} else {
				if len(v.Sealed) != SealedIdentitySize+archive.OfferSize {
					t.Errorf("sealed with an offer is %d bytes, want %d", len(v.Sealed), SealedIdentitySize+archive.OfferSize)
				}
				if _, err := archive.ParseOffer(v.Offer); err != nil {
					t.Errorf("offer: %v", err)
				}
				opened, extra, err := OpenIdentityWith(tmp, v.Sealed, archive.OfferSize, v.User, v.Device, l)
				if err != nil {
					t.Fatal(err)
				}
				vecEq(t, "opened identity seed", opened.Seed(), v.IdentitySeed)
				vecEq(t, "opened offer", extra, v.Offer)
				// A version 1 opener refuses the longer payload by its size.
				if _, err := OpenIdentity(tmp, v.Sealed, v.User, v.Device, l); err == nil {
					t.Error("OpenIdentity accepted a sealed payload with an offer")
				}
			}

			// Go-specific: the same global random stream gives the same bytes.
			cryptotest.SetGlobalRandom(t, v.GoRandomSeed)
			sealed, err := SealIdentityWith(id, v.Offer, tmp.Public(), v.User, v.Device, l)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sealed, v.Sealed) {
				t.Errorf("SealIdentity under cryptotest.SetGlobalRandom(t, %#x) no longer reproduces the file; if Go changed how it draws randomness, regenerate with go generate ./protocol/secret", v.GoRandomSeed)
			}
		})
	}
}

// vecLinkKey is a fixed link key for a vector.
func vecLinkKey(name string) LinkKey {
	var l LinkKey
	h := sha256.Sum256([]byte("sandi vector link key " + name))
	copy(l.k[:], h[:])
	return l
}

// ---- devicelist.json ----

const vecDeviceListDescription = `Signed device lists of one account (protocol.md §12). All integers are big-endian, all byte strings hex. ` +
	`Inputs: the account (user, Ed25519 identity seed) and, per list in order, seq, time (Unix milliseconds) and devices (16-byte device ids, in the canonical ascending byte order). ` +
	`prev is 32 zero bytes for the first list and the hash of the list before for each later one. ` +
	`signed_data = "sandi v1 device list record" || encoded without its signature; signature = Ed25519 signature of signed_data by the identity seed; ` +
	`encoded = 0x01 || user || seq (u64) || time (u64) || prev || device count (u16) || devices || signature (64); ` +
	`hash = SHA-256("sandi v1 device list hash" || encoded). ` +
	`The lists show a device added (seq 2), one removed (seq 3) and the last one removed (seq 4, an empty list). ` +
	`invalid holds encodings that a decoder MUST refuse, each with the rule it breaks. Everything is implementation-independent.`

type vecDeviceListFile struct {
	vecHeader
	User         protocol.UserID      `json:"user"`
	IdentitySeed vecHex               `json:"identity_seed"`
	Identity     vecHex               `json:"identity_public"`
	Vectors      []vecDeviceList      `json:"vectors"`
	Invalid      []vecInvalidEncoding `json:"invalid"`
}

func (f *vecDeviceListFile) sizes() map[string]int {
	return map[string]int{"lists": len(f.Vectors), "invalid encodings": len(f.Invalid)}
}

type vecDeviceList struct {
	Seq        uint64              `json:"seq"`
	Time       int64               `json:"time"`
	Prev       vecHex              `json:"prev"`
	Devices    []protocol.DeviceID `json:"devices"`
	SignedData vecHex              `json:"signed_data"`
	Signature  vecHex              `json:"signature"`
	Encoded    vecHex              `json:"encoded"`
	Hash       vecHex              `json:"hash"`
}

type vecInvalidEncoding struct {
	Reason  string `json:"reason"`
	Encoded vecHex `json:"encoded"`
}

func vecGenDeviceLists(t *testing.T) *vecDeviceListFile {
	id := vecIdentity(t, "alice")
	f := &vecDeviceListFile{vecHeader: vecHeader{vecDeviceListDescription}, User: vecUser("alice"), IdentitySeed: id.Seed(), Identity: vecPub(id)}
	a, b, c := vecDevice("alice laptop"), vecDevice("alice phone"), vecDevice("alice tablet")
	var prev [protocol.HashSize]byte
	for i, devs := range [][]protocol.DeviceID{{a}, {a, b, c}, {a, c}, nil} {
		l := &protocol.DeviceList{User: f.User, Seq: uint64(i + 1), Time: vecNowMS + int64(i)*3_600_000, Prev: prev, Devices: protocol.SortDevices(devs)}
		SignDeviceList(id, l)
		h := l.Hash()
		f.Vectors = append(f.Vectors, vecDeviceList{Seq: l.Seq, Time: l.Time, Prev: l.Prev[:], Devices: append([]protocol.DeviceID{}, l.Devices...),
			SignedData: l.SignedData(), Signature: l.Signature[:], Encoded: l.Marshal(), Hash: h[:]})
		prev = h
	}
	good := f.Vectors[1].Encoded
	const devs = 1 + 16 + 8 + 8 + 32 + 2 // offset of the first device
	mut := func(reason string, m func(b []byte) []byte) {
		f.Invalid = append(f.Invalid, vecInvalidEncoding{Reason: reason, Encoded: m(bytes.Clone(good))})
	}
	mut("version 2", func(b []byte) []byte { b[0] = 2; return b })
	mut("zero user id", func(b []byte) []byte { clear(b[1:17]); return b })
	mut("seq 0", func(b []byte) []byte { clear(b[17:25]); return b })
	mut("devices not in ascending order", func(b []byte) []byte {
		d0 := bytes.Clone(b[devs : devs+16])
		copy(b[devs:], b[devs+16:devs+32])
		copy(b[devs+16:], d0)
		return b
	})
	mut("a device listed twice", func(b []byte) []byte { copy(b[devs+16:devs+32], b[devs:devs+16]); return b })
	mut("zero device id", func(b []byte) []byte { clear(b[devs : devs+16]); return b })
	mut("device count over 100", func(b []byte) []byte { binary.BigEndian.PutUint16(b[devs-2:], 101); return b })
	mut("trailing byte", func(b []byte) []byte { return append(b, 0) })
	mut("truncated signature", func(b []byte) []byte { return b[:len(b)-1] })
	return f
}

func vecReplayDeviceLists(t *testing.T, f *vecDeviceListFile) {
	id, err := IdentityFromSeed(f.IdentitySeed)
	if err != nil {
		t.Fatal(err)
	}
	vecEq(t, "identity_public", vecPub(id), f.Identity)
	var prev [protocol.HashSize]byte
	var held *protocol.DeviceList
	for i, v := range f.Vectors {
		what := fmt.Sprintf("list %d", i)
		vecEq(t, what+" prev", prev[:], v.Prev)
		l := &protocol.DeviceList{User: f.User, Seq: v.Seq, Time: v.Time, Prev: [protocol.HashSize]byte(v.Prev), Devices: v.Devices}
		SignDeviceList(id, l)
		vecEq(t, what+" signed_data", l.SignedData(), v.SignedData)
		vecEq(t, what+" signature", l.Signature[:], v.Signature)
		vecEq(t, what+" encoded", l.Marshal(), v.Encoded)
		h := l.Hash()
		vecEq(t, what+" hash", h[:], v.Hash)
		parsed, err := protocol.ParseDeviceList(v.Encoded)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := parsed.Verify(f.User, id.Public()); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if err := parsed.Follows(held); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if held != nil {
			if err := held.Follows(parsed); !errors.Is(err, protocol.ErrDeviceListRollback) {
				t.Errorf("%s: the previous list after it is not a rollback: %v", what, err)
			}
		}
		prev, held = h, parsed
	}
	for _, v := range f.Invalid {
		if _, err := protocol.ParseDeviceList(v.Encoded); err == nil {
			t.Errorf("invalid encoding (%s) decodes", v.Reason)
		}
	}
}

// ---- devicename.json ----

const vecDeviceNameDescription = `Signed device names of one account (protocol.md §12.5). All integers are big-endian, all byte strings hex. ` +
	`Inputs: the account (user, Ed25519 identity seed) and, per record, device, seq (below 2^63), time (Unix milliseconds) and name (UTF-8). ` +
	`signed_data = "sandi v1 device name" || encoded without its signature; signature = Ed25519 signature of signed_data by the identity seed; ` +
	`encoded = 0x01 || user || device || seq (u64) || time (u64) || name length (u8) || name || signature (64). ` +
	`invalid holds encodings that a decoder MUST refuse, each with the rule it breaks. Everything is implementation-independent.`

type vecDeviceNameFile struct {
	vecHeader
	User         protocol.UserID      `json:"user"`
	IdentitySeed vecHex               `json:"identity_seed"`
	Identity     vecHex               `json:"identity_public"`
	Vectors      []vecDeviceName      `json:"vectors"`
	Invalid      []vecInvalidEncoding `json:"invalid"`
}

func (f *vecDeviceNameFile) sizes() map[string]int {
	return map[string]int{"names": len(f.Vectors), "invalid encodings": len(f.Invalid)}
}

type vecDeviceName struct {
	Device     protocol.DeviceID `json:"device"`
	Seq        uint64            `json:"seq"`
	Time       int64             `json:"time"`
	Name       string            `json:"name"`
	SignedData vecHex            `json:"signed_data"`
	Signature  vecHex            `json:"signature"`
	Encoded    vecHex            `json:"encoded"`
}

func vecGenDeviceNames(t *testing.T) *vecDeviceNameFile {
	id := vecIdentity(t, "alice")
	f := &vecDeviceNameFile{vecHeader: vecHeader{vecDeviceNameDescription}, User: vecUser("alice"), IdentitySeed: id.Seed(), Identity: vecPub(id)}
	for i, v := range []struct {
		dev  string
		seq  uint64
		name string
	}{{"alice laptop", 1, "CLI on laptop"}, {"alice phone", 1, "Chromium on Android"}, {"alice phone", 2, "téléphone de travail"}, {"alice laptop", 2, strings.Repeat("n", protocol.MaxDeviceNameBytes)},
		{"alice tablet", 1<<63 - 1, "the largest seq"}} {
		n := &protocol.DeviceName{User: f.User, Device: vecDevice(v.dev), Seq: v.seq, Time: vecNowMS + int64(i)*60_000, Name: v.name}
		SignDeviceName(id, n)
		f.Vectors = append(f.Vectors, vecDeviceName{Device: n.Device, Seq: n.Seq, Time: n.Time, Name: n.Name, SignedData: n.SignedData(), Signature: n.Signature[:], Encoded: n.Marshal()})
	}
	good := f.Vectors[0].Encoded
	const nameLen = 1 + 16 + 16 + 8 + 8 // offset of the name length
	mut := func(reason string, m func(b []byte) []byte) {
		f.Invalid = append(f.Invalid, vecInvalidEncoding{Reason: reason, Encoded: m(bytes.Clone(good))})
	}
	mut("version 2", func(b []byte) []byte { b[0] = 2; return b })
	mut("zero user id", func(b []byte) []byte { clear(b[1:17]); return b })
	mut("zero device id", func(b []byte) []byte { clear(b[17:33]); return b })
	mut("seq 0", func(b []byte) []byte { clear(b[33:41]); return b })
	mut("seq 2^63", func(b []byte) []byte { clear(b[33:41]); b[33] = 0x80; return b })
	mut("seq 2^64-1", func(b []byte) []byte { copy(b[33:41], bytes.Repeat([]byte{0xff}, 8)); return b })
	mut("time 2^63", func(b []byte) []byte { clear(b[41:49]); b[41] = 0x80; return b })
	mut("empty name", func(b []byte) []byte { return append(append(b[:nameLen], 0), b[nameLen+1+int(b[nameLen]):]...) })
	mut("name over 64 bytes", func(b []byte) []byte {
		rest := bytes.Clone(b[nameLen+1+int(b[nameLen]):])
		return append(append(append(b[:nameLen], 65), bytes.Repeat([]byte("n"), 65)...), rest...)
	})
	mut("control character in the name", func(b []byte) []byte { b[nameLen+1] = 0x1b; return b })
	mut("name not UTF-8", func(b []byte) []byte { b[nameLen+1] = 0xff; return b })
	mut("signature S not below the group order", func(b []byte) []byte { b[len(b)-1] = 0xff; return b })
	mut("trailing byte", func(b []byte) []byte { return append(b, 0) })
	mut("truncated signature", func(b []byte) []byte { return b[:len(b)-1] })
	return f
}

func vecReplayDeviceNames(t *testing.T, f *vecDeviceNameFile) {
	id, err := IdentityFromSeed(f.IdentitySeed)
	if err != nil {
		t.Fatal(err)
	}
	vecEq(t, "identity_public", vecPub(id), f.Identity)
	for i, v := range f.Vectors {
		what := fmt.Sprintf("name %d", i)
		n := &protocol.DeviceName{User: f.User, Device: v.Device, Seq: v.Seq, Time: v.Time, Name: v.Name}
		SignDeviceName(id, n)
		vecEq(t, what+" signed_data", n.SignedData(), v.SignedData)
		vecEq(t, what+" signature", n.Signature[:], v.Signature)
		vecEq(t, what+" encoded", n.Marshal(), v.Encoded)
		parsed, err := protocol.ParseDeviceName(v.Encoded)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := parsed.Verify(f.User, v.Device, id.Public()); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if err := parsed.Verify(f.User, vecDevice("someone else's"), id.Public()); !errors.Is(err, protocol.ErrBadDeviceName) {
			t.Errorf("%s verifies for another device: %v", what, err)
		}
	}
	for _, v := range f.Invalid {
		if _, err := protocol.ParseDeviceName(v.Encoded); err == nil {
			t.Errorf("invalid encoding (%s) decodes", v.Reason)
		}
	}
}

// ---- block.json ----

const vecBlockDescription = `Block statements of one account (protocol.md §16.2). All integers are big-endian, all byte strings hex. ` +
	`Inputs: the account (user, Ed25519 identity seed) and, per statement, the other user, blocked (true or false) and time (Unix milliseconds). ` +
	`signed_data = "sandi v1 block statement" || encoded without its signature; signature = Ed25519 signature of signed_data by the identity seed; ` +
	`encoded = 0x01 || user || other || blocked (u8, 1 or 0) || time (u64) || signature (64). ` +
	`invalid holds encodings that a decoder MUST refuse, each with the rule it breaks. Everything is implementation-independent.`

type vecBlockFile struct {
	vecHeader
	User         protocol.UserID      `json:"user"`
	IdentitySeed vecHex               `json:"identity_seed"`
	Identity     vecHex               `json:"identity_public"`
	Vectors      []vecBlock           `json:"vectors"`
	Invalid      []vecInvalidEncoding `json:"invalid"`
}

func (f *vecBlockFile) sizes() map[string]int {
	return map[string]int{"statements": len(f.Vectors), "invalid encodings": len(f.Invalid)}
}

type vecBlock struct {
	Other      protocol.UserID `json:"other"`
	Blocked    bool            `json:"blocked"`
	Time       int64           `json:"time"`
	SignedData vecHex          `json:"signed_data"`
	Signature  vecHex          `json:"signature"`
	Encoded    vecHex          `json:"encoded"`
}

func vecGenBlocks(t *testing.T) *vecBlockFile {
	id := vecIdentity(t, "alice")
	f := &vecBlockFile{vecHeader: vecHeader{vecBlockDescription}, User: vecUser("alice"), IdentitySeed: id.Seed(), Identity: vecPub(id)}
	for i, v := range []struct {
		other   string
		blocked bool
	}{{"bob", true}, {"carol", true}, {"bob", false}} {
		b := &protocol.Block{User: f.User, Other: vecUser(v.other), Blocked: v.blocked, Time: vecNowMS + int64(i)*60_000}
		SignBlock(id, b)
		f.Vectors = append(f.Vectors, vecBlock{Other: b.Other, Blocked: b.Blocked, Time: b.Time, SignedData: b.SignedData(), Signature: b.Signature[:], Encoded: b.Marshal()})
	}
	good := f.Vectors[0].Encoded
	mut := func(reason string, m func(b []byte) []byte) {
		f.Invalid = append(f.Invalid, vecInvalidEncoding{Reason: reason, Encoded: m(bytes.Clone(good))})
	}
	mut("version 2", func(b []byte) []byte { b[0] = 2; return b })
	mut("zero user id", func(b []byte) []byte { clear(b[1:17]); return b })
	mut("zero other id", func(b []byte) []byte { clear(b[17:33]); return b })
	mut("other is the user", func(b []byte) []byte { copy(b[17:33], b[1:17]); return b })
	mut("blocked flag 2", func(b []byte) []byte { b[33] = 2; return b })
	mut("time above 2^63-1", func(b []byte) []byte { b[34] = 0x80; return b })
	mut("signature S not below the group order", func(b []byte) []byte { b[len(b)-1] = 0xff; return b })
	mut("trailing byte", func(b []byte) []byte { return append(b, 0) })
	mut("truncated signature", func(b []byte) []byte { return b[:len(b)-1] })
	return f
}

func vecReplayBlocks(t *testing.T, f *vecBlockFile) {
	id, err := IdentityFromSeed(f.IdentitySeed)
	if err != nil {
		t.Fatal(err)
	}
	vecEq(t, "identity_public", vecPub(id), f.Identity)
	for i, v := range f.Vectors {
		what := fmt.Sprintf("statement %d", i)
		b := &protocol.Block{User: f.User, Other: v.Other, Blocked: v.Blocked, Time: v.Time}
		SignBlock(id, b)
		vecEq(t, what+" signed_data", b.SignedData(), v.SignedData)
		vecEq(t, what+" signature", b.Signature[:], v.Signature)
		vecEq(t, what+" encoded", b.Marshal(), v.Encoded)
		parsed, err := protocol.ParseBlock(v.Encoded)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := parsed.Verify(f.User, v.Other, id.Public()); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if err := parsed.Verify(f.User, vecUser("someone else"), id.Public()); !errors.Is(err, protocol.ErrBadBlock) {
			t.Errorf("%s verifies about another user: %v", what, err)
		}
	}
	for _, v := range f.Invalid {
		if _, err := protocol.ParseBlock(v.Encoded); err == nil {
			t.Errorf("invalid encoding (%s) decodes", v.Reason)
		}
	}
}
