//go:build !js

package client

// Fuzz targets for what the client decodes: a message's plaintext
// (ParseContent) and the server's JSON answers, which a malicious server
// writes (FuzzSyncAnswers: api.do's decoding and the processing of sync
// pages, with the chain, epoch, user and pre-key answers that processing
// asks for). Neither touches the network or the clock: the server is an
// http.RoundTripper that hands out the fuzzed answers in order, and the
// client's clock is fixed.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// maxContentInput is the longest input FuzzParseContent tries: a longer one
// is skipped, so it is never minimized (the engine's minimizer is quadratic
// in an input's length); the text length bound is checked once, apart.
const maxContentInput = 4096

// FuzzParseContent: ParseContent accepts only a content of a known type
// with valid UTF-8 text of at most MaxText bytes and well-formed
// attachments (at most 32, on text messages only, each with a blob id of
// 32 hex digits, a 32-byte key and digest, a file name without directory
// or control characters, a media type and a thumbnail of at most 8 KiB);
// what it accepts encodes back (json.Marshal) to a form it parses to the
// same content; and every valid content built from the input (as a text,
// and as an attachment's file name and media type) survives Marshal then
// ParseContent.
func FuzzParseContent(f *testing.F) {
	att := `{"blob":"0123456789abcdef0123456789abcdef","key":"` + strings.Repeat("A", 43) + `","digest":"` + strings.Repeat("B", 43) + `","size":5,"type":"image/png","name":"a.png"`
	for _, s := range []string{
		`{"type":"text","text":"hello","sentAt":1780000000000}`,
		`{"type":"title","text":"Plans"}`,
		`{"type":"text","text":"\u00e9\ud83d\ude00 \"quoted\"\n"}`,
		`{"type":"text","text":"x"} {}`,
		`{"type":"text","text":"x","extra":1}`,
		`{"type":"image","text":""}`,
		`{"type":"text","text":"\xff"}`,
		`{"type":"text","text":"","attachments":[` + att + `}]}`,
		`{"type":"text","text":"","attachments":[` + att + `,"width":3,"height":4,"thumbnail":"_w"}]}`,
		`{"type":"text","text":"","attachments":[]}`,
		`{"type":"title","text":"","attachments":[` + att + `}]}`,
		`{"type":"text","text":"","attachments":[` + strings.Replace(att, "a.png", "../a.png", 1) + `}]}`,
		`{"type":"text","text":"","attachments":[` + strings.Replace(att, "image/png", "audio/webm;codecs=opus", 1) + `,"duration":1500}]}`,
		`{"type":"reply","text":"yes","target":"AAAAAAAAAAAAAAAA"}`,
		`{"type":"reaction","text":"\ud83d\udc4d","target":"abcdefghijkl-_09"}`,
		`{"type":"reaction","text":"","target":"abcdefghijkl-_09"}`,
		`{"type":"reaction","text":"a b","target":"abcdefghijkl-_09"}`,
		`{"type":"edit","text":"new","target":"abcdefghijkl-_0"}`,
		`{"type":"edit","text":"","target":"abcdefghijkl-_09"}`,
		`{"type":"delete","text":"","target":"abcdefghijkl-_09"}`,
		`{"type":"delete","text":"x","target":"abcdefghijkl-_0="}`,
		`{"type":"text","text":"x","target":"abcdefghijkl-_09"}`,
		`{"type":"text","text":"gone soon","sentAt":1780000000000,"timer":3600}`,
		`{"type":"reaction","text":"","target":"abcdefghijkl-_09","timer":4294967295}`,
		`{"type":"text","text":"x","timer":-1}`,
		`{"type":"text","text":"x","timer":4294967296}`,
		`{"type":"text","text":"x","timer":1.5}`,
		`{"type":"receipt","text":"read","target":"abcdefghijkl-_09","sentAt":1780000000000}`,
		`{"type":"receipt","text":"delivered","target":"abcdefghijkl-_09"}`,
		`{"type":"receipt","text":"seen","target":"abcdefghijkl-_09"}`,
		`{"type":"receipt","text":"read"}`,
		`{"type":"receipt","text":"read","target":"abcdefghijkl-_09","by":"bob"}`,
	} {
		f.Add([]byte(s))
	}
	// The length bound, which inputs of fuzzable size do not reach.
	for n, ok := range map[int]bool{MaxText: true, MaxText + 1: false} {
		b, err := json.Marshal(Content{Type: ContentText, Text: strings.Repeat("é", n/2) + strings.Repeat("x", n%2)})
		if err != nil {
			f.Fatal(err)
		}
		if _, err := ParseContent(b); (err == nil) != ok {
			f.Fatalf("text of %d bytes: %v", n, err)
		}
	}
	// The bounds on attachments, likewise.
	valid := Attachment{Blob: strings.Repeat("ab", 16), Key: make([]byte, 32), Digest: make([]byte, 32), Size: 1, Type: "text/plain", Name: "n"}
	for _, c := range []struct {
		n     int
		thumb int
		name  int
		ok    bool
	}{{MaxAttachments, 0, 1, true}, {MaxAttachments + 1, 0, 1, false}, {1, MaxThumbnail, MaxFileName, true}, {1, MaxThumbnail + 1, 1, false}, {1, 0, MaxFileName + 1, false}} {
		a := valid
		a.Thumbnail, a.Name = make([]byte, c.thumb), strings.Repeat("n", c.name)
		b, err := json.Marshal(Content{Type: ContentText, Attachments: slices.Repeat([]Attachment{a}, c.n)})
		if err != nil {
			f.Fatal(err)
		}
		if _, err := ParseContent(b); (err == nil) != c.ok {
			f.Fatalf("%d attachments, thumbnail %d, name %d bytes: %v", c.n, c.thumb, c.name, err)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > maxContentInput {
			return
		}
		ct, err := ParseContent(bytes.Clone(in))
		if err == nil {
			receipt := ct.Type == ContentReceipt
			if ct.Type != ContentText && ct.Type != ContentTitle && !isAction(ct.Type) && !receipt || !utf8.ValidString(ct.Text) || len(ct.Text) > MaxText {
				t.Fatalf("accepted %+v", ct)
			}
			if receipt && ct.Text != ReceiptDelivered && ct.Text != ReceiptRead {
				t.Fatalf("accepted a receipt %q", ct.Text)
			}
			// An action or receipt names a target of refLen base64url
			// characters; nothing else names one.
			if _, err := base64.RawURLEncoding.DecodeString(ct.Target); (isAction(ct.Type) || receipt) != (len(ct.Target) == refLen && err == nil) {
				t.Fatalf("accepted a %s with target %q", ct.Type, ct.Target)
			}
			if ct.Type == ContentReaction && (len(ct.Text) > MaxEmoji || strings.ContainsAny(ct.Text, " \n\t\x00")) ||
				ct.Type == ContentDelete && ct.Text != "" || (ct.Type == ContentEdit || ct.Type == ContentReply) && ct.Text == "" {
				t.Fatalf("accepted %+v", ct)
			}
			if len(ct.Attachments) > MaxAttachments || len(ct.Attachments) > 0 && ct.Type != ContentText {
				t.Fatalf("accepted %d attachments on a %s message", len(ct.Attachments), ct.Type)
			}
			for _, a := range ct.Attachments {
				if len(a.Blob) != 32 || len(a.Key) != 32 || len(a.Digest) != 32 || len(a.Thumbnail) > MaxThumbnail || a.Size < 0 ||
					a.Name == "" || a.Name == ".." || strings.ContainsAny(a.Name, "/\\\x00\n\r\x1b\u202e") || !strings.Contains(a.Type, "/") {
					t.Fatalf("accepted attachment %+v", a)
				}
			}
			b, err := json.Marshal(ct)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseContent(b)
			if err != nil || !reflect.DeepEqual(back, ct) {
				t.Fatalf("content %+v encodes to %s, which parses to %+v, %v", ct, b, back, err)
			}
		}
		// The input as the text of a content of each type.
		for _, typ := range []string{ContentText, ContentTitle} {
			want := Content{Type: typ, Text: string(in), SentAt: int64(len(in))}
			if !utf8.Valid(in) || len(in) > MaxText {
				continue
			}
			b, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := ParseContent(b); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Marshal then ParseContent of %+v gives %+v, %v", want, got, err)
			}
		}
		// The input as an attachment's name and media type: a content
		// accepted once is accepted again, the same.
		if !utf8.Valid(in) {
			return // json.Marshal would change it
		}
		a := valid
		a.Name, a.Type = string(in), string(in)
		for _, a := range []Attachment{a, {Blob: valid.Blob, Key: valid.Key, Digest: valid.Digest, Type: valid.Type, Name: string(in)}} {
			want := Content{Type: ContentText, Attachments: []Attachment{a}}
			b, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := ParseContent(b); err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("Marshal then ParseContent of %+v gives %+v", want, got)
			}
		}
	})
}

// ---- the server's answers ----

// fuzzNow is the client's fixed clock.
var fuzzNow = time.UnixMilli(1_780_000_000_000)

func fuzzBytes(label string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256(fmt.Appendf(nil, "sandi client fuzz %s %d", label, i))
		out = append(out, h[:]...)
	}
	return out[:n]
}

func fuzzID[T ~[protocol.IDSize]byte](label string) (id T) {
	copy(id[:], fuzzBytes("id "+label, protocol.IDSize))
	return id
}

func fuzzKey[T any](tb testing.TB, label string, from func([]byte) (T, error)) T {
	tb.Helper()
	k, err := from(fuzzBytes("key "+label, secret.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func b64s(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// syncFixture is a device (self) that holds epoch 1 of a conversation
// alice created with it, and what a server could send it: alice's
// envelopes in epochs 1 and 2, epoch 2's distribution, a chain record
// adding carol. Long values are blobs (see blobExpand).
type syncFixture struct {
	store   map[string][]byte // the device's storage before each input
	selfID  *secret.IdentityPrivateKey
	prekey  *prekeyEntry // pre-key 3, which epoch 2 is sealed to
	genesis []byte       // the chain's first record, which the device holds
	blobs   [][]byte     // base64 texts an answer can name
	texts   map[string]protocol.UserID
	conv    protocol.ConversationID
	seeds   [][]byte
	self    protocol.DeviceRef
	alice   protocol.DeviceRef
	aliceID *secret.IdentityPrivateKey
}

// blobExpand is the compact form of the answers (the same scheme as the
// protocol package's fuzz targets): 0xff k stands for blobs[k], 0xff 0xff
// for one 0xff byte. A distribution is 3 kB of base64, and the engine's
// minimizer costs a number of executions quadratic in the input's length;
// answers that carried it raw would keep the workers minimizing.
func blobExpand(in []byte, blobs [][]byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		if in[i] == 0xff && i+1 < len(in) {
			if k := int(in[i+1]); k < len(blobs) {
				out = append(out, blobs[k]...)
				i++
				continue
			}
			if in[i+1] == 0xff {
				i++
			}
		}
		out = append(out, in[i])
	}
	return out
}

// blob adds a base64 text to the blobs and returns its reference.
func (fx *syncFixture) blob(b []byte) string { return fx.blobText(b64s(b)) }

// blobText adds a text to the blobs and returns its reference.
func (fx *syncFixture) blobText(s string) string {
	fx.blobs = append(fx.blobs, []byte(s))
	return string([]byte{0xff, byte(len(fx.blobs) - 1)})
}

func newSyncFixture(tb testing.TB) *syncFixture {
	tb.Helper()
	fx := &syncFixture{store: map[string][]byte{}, texts: map[string]protocol.UserID{}}
	fx.self = protocol.DeviceRef{User: fuzzID[protocol.UserID]("self"), Device: fuzzID[protocol.DeviceID]("self")}
	fx.alice = protocol.DeviceRef{User: fuzzID[protocol.UserID]("alice"), Device: fuzzID[protocol.DeviceID]("alice")}
	carol := fuzzID[protocol.UserID]("carol")
	fx.conv = fuzzID[protocol.ConversationID]("conversation")
	selfID := fuzzKey(tb, "self identity", secret.IdentityFromSeed)
	fx.aliceID = fuzzKey(tb, "alice identity", secret.IdentityFromSeed)
	carolID := fuzzKey(tb, "carol identity", secret.IdentityFromSeed)
	signedKEM := fuzzKey(tb, "self signed", secret.KEMKeyFromSeed)
	oneTimeKEM := fuzzKey(tb, "self one-time", secret.KEMKeyFromSeed)
	put := func(key string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		fx.store[key] = b
	}
	now := fuzzNow.Unix()
	put("account", account{Server: "http://server.invalid", Username: "self", User: fx.self.User, Device: fx.self.Device,
		Token: "token", Cursor: 10, NextPreKeyID: 10, SignedPreKeyID: 1, Maintained: now})
	// The identity and the pre-key epoch 2 is sealed to are given to the
	// client after Open (see run), not stored: deriving them from their
	// seeds, as loading does, costs more than the rest of an execution that
	// the server's first answer ends, and the engine's minimizer runs many
	// of those.
	fx.selfID = selfID
	// The account's signed device list, held: Sync then asks the server
	// for nothing before its first sync page.
	own := &protocol.DeviceList{User: fx.self.User, Seq: 1, Time: now * 1000, Devices: []protocol.DeviceID{fx.self.Device}}
	secret.SignDeviceList(selfID, own)
	put(deviceListKey(fx.self.User), heldList{Identity: selfID.Public(), List: own.Marshal()})
	fx.prekey = &prekeyEntry{Kind: protocol.OneTimePreKey, Created: now, Seed: oneTimeKEM.Seed(), key: oneTimeKEM}
	put("contact/"+fx.alice.User.String(), contact{Username: "alice", Identity: fx.aliceID.Public()})

	// The conversation: alice (admin) and self; self holds epoch 1.
	genesis := &protocol.Record{Op: protocol.OpCreate, Conversation: fx.conv, Time: fuzzNow.UnixMilli(), Author: fx.alice.User,
		Members: []protocol.Member{{User: fx.alice.User, Identity: fx.aliceID.Public(), Role: protocol.RoleAdmin}, {User: fx.self.User, Identity: selfID.Public(), Role: protocol.RoleMember}}}
	secret.SignRecord(fx.aliceID, genesis)
	chain0, err := protocol.Genesis(genesis)
	if err != nil {
		tb.Fatal(err)
	}
	put("conv/"+fx.conv.String(), convState{ID: fx.conv, Epoch: 1, LastSeq: 4})
	fx.genesis = genesis.Marshal()
	put(chainKey(fx.conv), []b64{fx.genesis})
	var s1 secret.EpochSecret
	copy(s1[:], fuzzBytes("epoch 1", len(s1)))
	devs := []protocol.DeviceRef{fx.alice, fx.self}
	mine, err := secret.NewEpoch(&s1, fx.conv, 1, fx.self, devs)
	if err != nil {
		tb.Fatal(err)
	}
	state, err := mine.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	idents := map[protocol.UserID]protocol.IdentityKey{fx.alice.User: fx.aliceID.Public(), fx.self.User: selfID.Public()}
	put(epochKey(fx.conv, 1), epochEntry{ChainSeq: 0, Identities: idents, State: state})

	// Epoch 2, sealed by alice to self's one-time pre-key.
	selfBundle := &protocol.Bundle{User: fx.self.User, Device: fx.self.Device, Identity: selfID.Public(),
		Signed:     secret.SignPreKey(selfID, fx.self.User, fx.self.Device, protocol.SignedPreKey, 1, now, signedKEM),
		LastResort: secret.SignPreKey(selfID, fx.self.User, fx.self.Device, protocol.LastResortPreKey, 2, now, signedKEM),
		OneTime:    []protocol.PreKey{secret.SignPreKey(selfID, fx.self.User, fx.self.Device, protocol.OneTimePreKey, 3, now, oneTimeKEM)}}
	aliceKEM := fuzzKey(tb, "alice kem", secret.KEMKeyFromSeed)
	aliceBundle := &protocol.Bundle{User: fx.alice.User, Device: fx.alice.Device, Identity: fx.aliceID.Public(),
		Signed:     secret.SignPreKey(fx.aliceID, fx.alice.User, fx.alice.Device, protocol.SignedPreKey, 1, now, aliceKEM),
		LastResort: secret.SignPreKey(fx.aliceID, fx.alice.User, fx.alice.Device, protocol.LastResortPreKey, 2, now, aliceKEM)}
	d2, s2, err := secret.NewDistribution(fx.aliceID, secret.EpochRequest{Chain: chain0, Epoch: 2, Creator: fx.alice, Time: fuzzNow.UnixMilli(), Bundles: []*protocol.Bundle{aliceBundle, selfBundle}})
	if err != nil {
		tb.Fatal(err)
	}
	entry := d2.Entry(fx.self)

	// alice's messages.
	envelope := func(s *secret.EpochSecret, epoch uint64, counter uint32, text string) string {
		e, err := secret.NewEpoch(s, fx.conv, epoch, fx.alice, devs)
		if err != nil {
			tb.Fatal(err)
		}
		for range counter {
			if _, err := e.Encrypt(fx.aliceID, nil); err != nil {
				tb.Fatal(err)
			}
		}
		pt, err := json.Marshal(Content{Type: ContentText, Text: text, SentAt: fuzzNow.UnixMilli()})
		if err != nil {
			tb.Fatal(err)
		}
		env, err := e.Encrypt(fx.aliceID, pt)
		if err != nil {
			tb.Fatal(err)
		}
		fx.texts[text] = fx.alice.User
		return fx.blob(env.Marshal())
	}
	convRef, userRef, devRef := fx.blobText(fx.conv.String()), fx.blobText(fx.alice.User.String()), fx.blobText(fx.alice.Device.String())
	message := func(id, seq int, epoch uint64, env string) string {
		return fmt.Sprintf(`{"id":%d,"kind":"message","conversation":"%s","epoch":%d,"message":{"conversation":"%s","seq":%d,"sender":"%s","senderUser":"%s","epoch":%d,"envelope":"%s","createdAt":%d}}`,
			id, convRef, epoch, convRef, seq, devRef, userRef, epoch, env, fuzzNow.UnixMilli())
	}
	// A whole message event as one blob, for seeds that carry several.
	event := func(id, seq int, epoch uint64, env string) string {
		return fx.blobText(string(blobExpand([]byte(message(id, seq, epoch, env)), fx.blobs)))
	}
	env10, env11, env12 := envelope(&s1, 1, 0, "first"), envelope(&s1, 1, 1, "second"), envelope(&s1, 1, 5, "sixth")
	env20 := envelope(s2, 2, 0, "in epoch two")
	add := &protocol.Record{Op: protocol.OpAdd, Conversation: fx.conv, Seq: 1, Prev: chain0.Head, Time: fuzzNow.UnixMilli() + 1, Author: fx.alice.User,
		Members: []protocol.Member{{User: carol, Identity: carolID.Public(), Role: protocol.RoleMember}}}
	secret.SignRecord(fx.aliceID, add)
	addRef, genesisRef := fx.blob(add.Marshal()), fx.blob(genesis.Marshal())
	session := fmt.Sprintf(`{"epoch":2,"distribution":"%s","preKeyId":%d,"initiatorEphemeralKey":"%s","ciphertext":"%s"}`,
		fx.blob(d2.Marshal()), entry.PreKeyID, fx.blob(entry.Enc[:]), fx.blob(entry.Ciphertext[:]))
	page := func(cursor int, more bool, events ...string) string {
		return fmt.Sprintf(`{"events":[%s],"cursor":%d,"more":%v}`, strings.Join(events, ","), cursor, more)
	}
	user := fmt.Sprintf(`{"id":"%s","username":"alice","identityKey":"%s","devices":[{"id":"%s","name":"phone","createdAt":1}]}`,
		userRef, fx.blobText(fx.aliceID.Public().String()), devRef)
	membership := fmt.Sprintf(`{"id":12,"kind":"membership","conversation":"%s"}`, convRef)
	seeds := [][]string{
		{"0" + page(11, false, event(11, 5, 1, env10), event(12, 6, 1, env12), event(13, 7, 1, env11))},
		{"0" + page(11, false, message(11, 5, 1, env10))},
		{"0" + page(11, true, event(11, 5, 1, env10)), "0" + page(12, false, event(12, 6, 1, env11), event(13, 6, 1, env11))},
		{"0" + page(12, false, membership), "0" + `{"records":["` + addRef + `"]}`},
		{"0" + page(12, false, membership), "0" + `{"records":["` + genesisRef + `","` + addRef + `"]}`},
		{"0" + page(11, false, event(11, 5, 2, env20)), "0" + session},
		{"0" + page(11, false, event(11, 5, 2, env20)), "0" + fx.blobText(string(blobExpand([]byte(session), fx.blobs))), "0" + `{"records":["` + addRef + `"]}`},
		{"0" + page(12, false, fmt.Sprintf(`{"id":12,"kind":"identity_changed","user":"%s"}`, userRef)), "0" + user},
		{"0" + page(12, false, `{"id":12,"kind":"prekeys_low"}`), "0" + `{"count":0}`, "0{}"},
		{"0" + page(12, false, fmt.Sprintf(`{"id":12,"kind":"removed","conversation":"%s"}`, convRef))},
		{"0" + `{"events":[{"id":1,"kind":"message"`},
		{"4" + `{"status":404,"code":"not_found","detail":"no"}`},
		{"0" + page(3, false)},
	}
	for _, s := range seeds {
		fx.seeds = append(fx.seeds, []byte(strings.Join(s, "\x00")))
	}
	return fx
}

// fuzzServer answers the client's requests with the fuzzed answers, in
// order, then with 404 not_found. It never answers 5xx or 429 and never
// fails a request: api.do would retry after a sleep.
type fuzzServer struct {
	answers  [][]byte
	requests int
	syncs    int // requests for a sync page
	late     int // requests for a sync page after the answers ran out
}

// Answer status by the answer's first byte.
var fuzzStatus = map[byte]int{'0': 200, '1': 201, '2': 204, '3': 400, '4': 404, '5': 409, '6': 403, '7': 413}

func (s *fuzzServer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	code, body, ctype := 404, []byte(`{"status":404,"code":"not_found"}`), "application/problem+json"
	if s.requests < len(s.answers) {
		a := s.answers[s.requests]
		code, body, ctype = 200, a, "application/json"
		if len(a) > 0 {
			body = a[1:]
			if c, ok := fuzzStatus[a[0]&0x7f]; ok {
				code = c
			}
			if code >= 300 && a[0]&0x80 == 0 {
				ctype = "application/problem+json"
			}
		}
	}
	if r.URL.Path == "/api/sync" {
		s.syncs++
		if s.requests >= len(s.answers) {
			s.late++
		}
	}
	s.requests++
	if s.requests > 100_000 {
		panic("the client keeps asking") // a loop: fail rather than hang
	}
	return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {ctype}}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// stored returns a copy of st's contents, without the logs of what the
// device detected (alarms, warnings), which a refused answer may extend.
func stored(st *MemStorage) map[string]string {
	out := map[string]string{}
	for k, v := range st.m {
		if k != "alarms" && k != "warnings" {
			out[k] = string(v)
		}
	}
	return out
}

// FuzzSyncAnswers: one Sync of a device against a server whose answers are
// the fuzz input (answers separated by a zero byte, each a status byte and
// a body, in the compact form of blobExpand). Checked: no panic; no loop
// (Sync asks for no sync page after the answers run out, but the one that
// is refused); a refused first answer (the sync page) changes nothing
// stored, and no refused page moves the cursor; the cursor never goes back;
// the stored chain only grows from the one held; every message Sync returns
// is one alice wrote, attributed to her; and whatever the server sent, the
// device can still open its storage and load every conversation, epoch and
// history in it.
func FuzzSyncAnswers(f *testing.F) {
	fx := newSyncFixture(f)
	for _, s := range fx.seeds {
		f.Add(s)
	}
	// Control: the first seed decrypts three messages.
	if res, _ := fx.run(f, fx.seeds[0]); len(res.Messages) != 3 {
		f.Fatalf("control: %d messages", len(res.Messages))
	}
	if res, err := fx.run(f, fx.seeds[5]); len(res.Messages) != 1 || err != nil {
		f.Fatalf("control: epoch 2 gives %d messages, %v", len(res.Messages), err)
	}
	f.Fuzz(func(t *testing.T, in []byte) { fx.run(t, in) })
}

func (fx *syncFixture) run(t testing.TB, in []byte) (SyncResult, error) {
	answers := bytes.Split(blobExpand(in, fx.blobs), []byte{0})
	st := &MemStorage{m: maps.Clone(fx.store)}
	srv := &fuzzServer{answers: answers}
	c, err := Open(Options{Storage: st, HTTPClient: &http.Client{Transport: srv}, Now: func() time.Time { return fuzzNow }, OneTimeBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	c.id = fx.selfID
	c.prekeys[3] = &prekeyEntry{Kind: fx.prekey.Kind, Created: fx.prekey.Created, Seed: fx.prekey.Seed, key: fx.prekey.key}
	before := stored(st)
	res, err := c.Sync(context.Background())
	// A request an event asks for (a chain, a user, a session) may meet
	// not_found and be passed over, but a refused sync page ends Sync.
	if srv.late > 1 {
		t.Fatalf("%d sync pages asked for after the answers ran out: the client keeps asking", srv.late)
	}
	for _, m := range res.Messages {
		if who, ok := fx.texts[m.Text]; !ok || who != m.SenderID || m.Conversation != fx.conv || m.Own {
			t.Fatalf("Sync returned a message alice did not write: %+v", m)
		}
	}
	var acct account
	if err := json.Unmarshal(st.m["account"], &acct); err != nil {
		t.Fatalf("stored account: %v", err)
	}
	if acct.Cursor < 10 {
		t.Fatalf("cursor went back from 10 to %d", acct.Cursor)
	}
	// The stored chain only ever grows from the one held: no answer
	// replaces or shortens it.
	var recs []b64
	if err := json.Unmarshal(st.m[chainKey(fx.conv)], &recs); err != nil || len(recs) == 0 || !bytes.Equal(recs[0], fx.genesis) {
		t.Fatalf("stored chain no longer starts with the genesis held (%d records, %v)", len(recs), err)
	}
	if err != nil && srv.requests == 1 {
		if after := stored(st); !maps.Equal(after, before) {
			t.Fatalf("a refused sync page (%v) changed what is stored", err)
		}
	}
	if err != nil && srv.syncs == 1 && acct.Cursor != 10 {
		t.Fatalf("a refused page (%v) moved the cursor to %d", err, acct.Cursor)
	}

	// The device still opens, whatever the server sent.
	if maps.Equal(stored(st), before) {
		return res, err
	}
	c2, oerr := Open(Options{Storage: st, HTTPClient: &http.Client{Transport: &fuzzServer{}}, Now: func() time.Time { return fuzzNow }})
	if oerr != nil {
		t.Fatalf("the device no longer opens after Sync (%v): %v", err, oerr)
	}
	keys, _ := st.List("conv/")
	for _, k := range keys {
		id, perr := protocol.ParseConversationID(strings.TrimPrefix(k, "conv/"))
		if perr != nil {
			t.Fatalf("stored key %q", k)
		}
		cs, cerr := c2.conv(id)
		if cerr != nil {
			t.Fatalf("conversation %s no longer loads after Sync (%v): %v", id, err, cerr)
		}
		for n := range cs.Epoch + 1 {
			if _, eerr := c2.loadEpoch(cs, n); eerr != nil {
				t.Fatalf("epoch %d of %s no longer loads after Sync (%v): %v", n, id, err, eerr)
			}
		}
		if _, herr := c2.History(id); herr != nil {
			t.Fatalf("history of %s no longer loads: %v", id, herr)
		}
	}
	return res, err
}
