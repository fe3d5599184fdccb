package protocol_test

// FuzzChain: the membership chain checks (Genesis, Chain.Apply,
// VerifyChain, Update, §6.2) over sequences of records built from the fuzz
// input. The input describes records compactly (an op, an author, members
// and users named by index into the users and identity keys of the
// membership vectors, testdata/vectors/membership.json); by default a record
// is linked to the chain head the holder has and signed by the key §6.2
// expects, so the fuzzer reaches the rules behind the signature check, and
// flags break the link, the conversation or the signature. Why compact:
// every Ed25519 operation costs about 0.1 ms in the instrumented binary, and
// the engine's minimizer runs a number of executions quadratic in the
// input's length; raw records (2 kB for the vector chain) kept both workers
// minimizing for the whole run. The record decoder itself is
// FuzzParseRecord's.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// chainVectors is the part of membership.json the target reads.
type chainVectors struct {
	Vectors []struct {
		Conversation string `json:"conversation"`
		Keys         []struct {
			Seed string `json:"seed"`
		} `json:"keys"`
		Records []struct {
			Encoded string `json:"encoded"`
		} `json:"records"`
		FinalHead string `json:"final_head"`
	} `json:"vectors"`
}

// chainFixture is what the records of a chain input are made of.
type chainFixture struct {
	conv   protocol.ConversationID
	users  []protocol.UserID      // the vector's users, a stranger, the zero id
	idents []protocol.IdentityKey // the vector's keys, the zero key
	keys   map[protocol.IdentityKey]*secret.IdentityPrivateKey
	vector []*protocol.Record // the first vector chain
	head   [protocol.HashSize]byte

	mu   sync.Mutex
	sigs map[[sha256.Size]byte][protocol.SignatureSize]byte
}

// sign signs rec with id, remembering signatures: Ed25519 is deterministic,
// most records of a mutated input are those of its parent, and a signature
// costs about 0.1 ms in the instrumented binary.
func (fx *chainFixture) sign(id *secret.IdentityPrivateKey, rec *protocol.Record) {
	pub := id.Public()
	key := sha256.Sum256(append(pub[:], rec.SignedData()...))
	fx.mu.Lock()
	sig, ok := fx.sigs[key]
	fx.mu.Unlock()
	if !ok {
		secret.SignRecord(id, rec)
		sig = rec.Signature
		fx.mu.Lock()
		if len(fx.sigs) > 1<<16 {
			clear(fx.sigs)
		}
		fx.sigs[key] = sig
		fx.mu.Unlock()
	}
	rec.Signature = sig
}

// Time of record seq in a chain input, as in the vectors.
func chainTime(seq uint64) int64 { return fixNow*1000 + 60_000*int64(seq) }

func loadChainFixture(tb testing.TB) *chainFixture {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", "membership.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var v chainVectors
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatal(err)
	}
	if len(v.Vectors) == 0 {
		tb.Fatal("membership.json holds no chain")
	}
	vec := v.Vectors[0]
	fx := &chainFixture{keys: map[protocol.IdentityKey]*secret.IdentityPrivateKey{}, sigs: map[[sha256.Size]byte][protocol.SignatureSize]byte{}}
	if fx.conv, err = protocol.ParseConversationID(vec.Conversation); err != nil {
		tb.Fatal(err)
	}
	for _, k := range vec.Keys {
		seed, err := hex.DecodeString(k.Seed)
		if err != nil {
			tb.Fatal(err)
		}
		id, err := secret.IdentityFromSeed(seed)
		if err != nil {
			tb.Fatal(err)
		}
		fx.keys[id.Public()] = id
		fx.idents = append(fx.idents, id.Public())
	}
	for _, r := range vec.Records {
		enc, err := hex.DecodeString(r.Encoded)
		if err != nil {
			tb.Fatal(err)
		}
		rec, err := protocol.ParseRecord(enc)
		if err != nil {
			tb.Fatal(err)
		}
		fx.vector = append(fx.vector, rec)
		for _, u := range append([]protocol.UserID{rec.Author}, rec.Users...) {
			if !slices.Contains(fx.users, u) {
				fx.users = append(fx.users, u)
			}
		}
		for _, m := range rec.Members {
			if !slices.Contains(fx.users, m.User) {
				fx.users = append(fx.users, m.User)
			}
		}
	}
	c, err := protocol.VerifyChain(fx.vector)
	if err != nil {
		tb.Fatalf("membership vector: %v", err)
	}
	fx.head = c.Head
	fx.users = append(fx.users, fixedUser("stranger"), protocol.UserID{})
	fx.idents = append(fx.idents, protocol.IdentityKey{})
	return fx
}

// Flags of one record of a chain input.
const (
	chainUnsigned  = 1 << 0 // leave the signature zero
	chainWrongKey  = 1 << 1 // sign with the key after the expected one
	chainOtherConv = 1 << 2 // another conversation
	chainBadPrev   = 1 << 3 // a previous hash that is not the head's
	chainSeqSkip   = 1 << 4 // the seq after the one expected
)

// maxChainRecords bounds the records of one input, to keep an execution
// short.
const maxChainRecords = 6

// A chain input is a control byte, then per record: op, flags, author,
// counts (members << 4 | users, each taken modulo 5), per member a user and
// a byte identity<<2 | role, per user a user. With bit 7 of the control
// byte, the holder starts with the first k records of the vector chain
// (k: bits 0-5) and the input's records continue it; with bit 6 as well,
// a holder of the whole vector chain is given those k records and the
// input's, which fork from it or roll it back unless they are the vector's
// own. Without bit 7, the holder starts with nothing, and a second holder,
// of the input's first k records, is checked too.

// encode describes recs (records of the vector chain) as a chain input.
func (fx *chainFixture) encode(control byte, recs []*protocol.Record) []byte {
	out := []byte{control}
	for _, r := range recs {
		out = append(out, byte(r.Op), 0, byte(slices.Index(fx.users, r.Author)), byte(len(r.Members)<<4|len(r.Users)))
		for _, m := range r.Members {
			out = append(out, byte(slices.Index(fx.users, m.User)), byte(slices.Index(fx.idents, m.Identity)<<2)|byte(m.Role))
		}
		for _, u := range r.Users {
			out = append(out, byte(slices.Index(fx.users, u)))
		}
	}
	return out
}

// chainInput reads the records of a chain input one at a time.
type chainInput struct {
	fx *chainFixture
	b  []byte
}

// next returns the next record, linked to the holder's chain head (nil
// before a genesis) and signed as its flags say, or nil at the end.
func (in *chainInput) next(head *protocol.Chain) *protocol.Record {
	if len(in.b) < 4 {
		return nil
	}
	fx := in.fx
	op, flags, author, counts := in.b[0], in.b[1], in.b[2], in.b[3]
	in.b = in.b[4:]
	rec := &protocol.Record{Op: protocol.Op(op % 8), Conversation: fx.conv, Author: fx.users[int(author)%len(fx.users)]}
	if head != nil {
		rec.Seq, rec.Prev = head.Seq+1, head.Head
	}
	for range int(counts>>4) % 5 {
		if len(in.b) < 2 {
			return nil
		}
		rec.Members = append(rec.Members, protocol.Member{
			User: fx.users[int(in.b[0])%len(fx.users)], Identity: fx.idents[int(in.b[1]>>2)%len(fx.idents)], Role: protocol.Role(in.b[1] & 3),
		})
		in.b = in.b[2:]
	}
	for range int(counts&0xf) % 5 {
		if len(in.b) < 1 {
			return nil
		}
		rec.Users = append(rec.Users, fx.users[int(in.b[0])%len(fx.users)])
		in.b = in.b[1:]
	}
	if flags&chainOtherConv != 0 {
		rec.Conversation = fixedConversation("other")
	}
	if flags&chainBadPrev != 0 {
		rec.Prev[0] ^= 1
	}
	if flags&chainSeqSkip != 0 {
		rec.Seq++
	}
	rec.Time = chainTime(rec.Seq)
	if flags&chainUnsigned == 0 {
		pub, ok := expectedSigner(head, rec)
		if flags&chainWrongKey != 0 {
			pub, ok = fx.idents[(slices.Index(fx.idents, pub)+1)%(len(fx.idents)-1)], true
		}
		if id := fx.keys[pub]; ok && id != nil {
			fx.sign(id, rec)
		}
	}
	return rec
}

// expectedSigner is the identity key that must sign rec as the next record
// of c (c nil: rec is the genesis record), or false if there is none.
func expectedSigner(c *protocol.Chain, rec *protocol.Record) (protocol.IdentityKey, bool) {
	if rec.Op == protocol.OpRekey && len(rec.Members) == 1 {
		return rec.Members[0].Identity, true
	}
	if c == nil {
		for _, m := range rec.Members {
			if m.User == rec.Author {
				return m.Identity, true
			}
		}
		return protocol.IdentityKey{}, false
	}
	m, ok := c.Member(rec.Author)
	return m.Identity, ok
}

// chainView is what a Chain exposes, to compare two chains or one chain
// before and after a call.
type chainView struct {
	conv    protocol.ConversationID
	seq     uint64
	head    [protocol.HashSize]byte
	members []protocol.Member
	hashes  [][protocol.HashSize]byte
}

func viewOf(c *protocol.Chain) chainView {
	v := chainView{conv: c.Conversation, seq: c.Seq, head: c.Head, members: c.Members()}
	for i := uint64(0); ; i++ {
		h, ok := c.HashAt(i)
		if !ok {
			break
		}
		v.hashes = append(v.hashes, h)
	}
	return v
}

func (v chainView) equal(o chainView) bool {
	return v.conv == o.conv && v.seq == o.seq && v.head == o.head && slices.Equal(v.members, o.members) && slices.Equal(v.hashes, o.hashes)
}

// checkStep checks the rules a record applied to prev (nil for genesis)
// must have met, and the chain it gave.
func checkStep(t *testing.T, prev, next *protocol.Chain, rec *protocol.Record) {
	t.Helper()
	h := rec.Hash()
	if next.Seq != rec.Seq || next.Head != h || next.Conversation != rec.Conversation {
		t.Fatalf("record %d applied but the chain is at %d", rec.Seq, next.Seq)
	}
	if got, ok := next.HashAt(rec.Seq); !ok || got != h || uint64(len(viewOf(next).hashes)) != rec.Seq+1 {
		t.Fatalf("chain after record %d does not end with its hash", rec.Seq)
	}
	signer, ok := expectedSigner(prev, rec)
	if !ok || signer.Verify(rec.SignedData(), rec.Signature[:]) != nil {
		t.Fatalf("record %d (%s) accepted without the signature of the expected key", rec.Seq, rec.Op)
	}
	if n := len(next.Members()); n > protocol.MaxMembers {
		t.Fatalf("%d members", n)
	}
	for _, m := range next.Members() {
		if m.User.IsZero() || (m.Role != protocol.RoleMember && m.Role != protocol.RoleAdmin) {
			t.Fatalf("member %+v accepted", m)
		}
		if _, err := protocol.ParseIdentityKey(m.Identity[:]); err != nil {
			t.Fatalf("member %s with an invalid identity key accepted: %v", m.User, err)
		}
	}
	if prev == nil {
		if a, ok := next.Member(rec.Author); rec.Op != protocol.OpCreate || rec.Seq != 0 || !ok || a.Role != protocol.RoleAdmin {
			t.Fatalf("genesis accepted: op %s, seq %d, author admin %v", rec.Op, rec.Seq, ok)
		}
		return
	}
	if prev.Seq+1 != rec.Seq || prev.Head != rec.Prev || prev.Conversation != rec.Conversation {
		t.Fatalf("record %d accepted after record %d, not linked to it", rec.Seq, prev.Seq)
	}
	author, ok := prev.Member(rec.Author)
	if !ok {
		t.Fatalf("record %d accepted from a non-member", rec.Seq)
	}
	switch rec.Op {
	case protocol.OpAdd, protocol.OpRemove, protocol.OpRole:
		if author.Role != protocol.RoleAdmin {
			t.Fatalf("%s by a plain member accepted", rec.Op)
		}
	case protocol.OpRekey:
		if m, _ := next.Member(rec.Author); m.Role != protocol.RoleMember {
			t.Fatalf("a rekey gave its author the role %s", m.Role)
		}
	case protocol.OpLeave:
		if _, still := next.Member(rec.Author); still {
			t.Fatal("a member is still in after leaving")
		}
	default:
		t.Fatalf("op %s accepted after genesis", rec.Op)
	}
	for _, m := range prev.Members() {
		cur, ok := next.Member(m.User)
		if ok && cur.Identity != m.Identity && !(rec.Op == protocol.OpRekey && m.User == rec.Author) {
			t.Fatalf("record %d (%s) changed the identity key of %s", rec.Seq, rec.Op, m.User)
		}
		if !ok && rec.Op != protocol.OpRemove && rec.Op != protocol.OpLeave {
			t.Fatalf("record %d (%s) removed %s", rec.Seq, rec.Op, m.User)
		}
	}
}

func FuzzChain(f *testing.F) {
	fx := loadChainFixture(f)
	n := len(fx.vector)
	// The vector chain, rebuilt from its description, is the vector itself.
	seed := fx.encode(0, fx.vector)
	in := &chainInput{fx: fx, b: seed[1:]}
	var c *protocol.Chain
	for rec := in.next(nil); rec != nil; rec = in.next(c) {
		var err error
		if c == nil {
			c, err = protocol.Genesis(rec)
		} else {
			c, err = c.Apply(rec)
		}
		if err != nil {
			f.Fatalf("vector chain as a fuzz input: %v", err)
		}
	}
	if c == nil || c.Head != fx.head {
		f.Fatal("vector chain as a fuzz input does not give the vector's head")
	}
	// vectorAt[k] is the vector chain after its first k records.
	vectorAt := make([]*protocol.Chain, n+1)
	for k := 1; k <= n; k++ {
		var err error
		if vectorAt[k], err = protocol.VerifyChain(fx.vector[:k]); err != nil {
			f.Fatal(err)
		}
	}
	// Seeds: the vector's records, from its genesis or continuing a holder
	// of its first k records, a few at a time.
	for k := 0; k < n; k++ {
		for _, l := range []int{1, 3, maxChainRecords} {
			recs := fx.vector[k:min(k+l, n)]
			if k == 0 {
				f.Add(fx.encode(byte(len(recs)/2), recs))
			} else {
				f.Add(fx.encode(0x80|byte(k), recs))
				f.Add(fx.encode(0xc0|byte(k), recs))
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		// The holder starts with the first k records of the vector (bit 7
		// of the control byte), or with nothing.
		control := b[0]
		var base *protocol.Chain
		k := 0
		if control&0x80 != 0 {
			k = min(max(int(control&0x3f), 1), n)
			base = vectorAt[k]
		}
		baseView := chainView{}
		if base != nil {
			baseView = viewOf(base)
		}
		in := &chainInput{fx: fx, b: b[1:]}
		var recs []*protocol.Record
		var accepted []bool
		var chains []*protocol.Chain // chains[i]: the holder's chain after recs[i]
		c := base
		for len(recs) < maxChainRecords {
			rec := in.next(c)
			if rec == nil {
				break
			}
			var next *protocol.Chain
			var err error
			if c == nil {
				next, err = protocol.Genesis(rec)
			} else {
				before := viewOf(c)
				next, err = c.Apply(rec)
				if !viewOf(c).equal(before) {
					t.Fatalf("Apply of record %d changed the chain it extends", rec.Seq)
				}
			}
			if err != nil {
				if next != nil {
					t.Fatalf("refused (%v) with a result", err)
				}
				if !errors.Is(err, protocol.ErrBadChain) && !errors.Is(err, protocol.ErrUnauthorized) {
					t.Fatalf("refusal wraps neither ErrBadChain nor ErrUnauthorized: %v", err)
				}
			} else {
				checkStep(t, c, next, rec)
				c = next
			}
			recs, accepted, chains = append(recs, rec), append(accepted, err == nil), append(chains, c)
		}
		if len(recs) == 0 {
			return
		}
		// allFrom[i]: recs[i:] were all accepted, one after the other.
		allFrom := make([]bool, len(recs)+1)
		allFrom[len(recs)] = true
		for i := len(recs) - 1; i >= 0; i-- {
			allFrom[i] = accepted[i] && allFrom[i+1]
		}
		update := func(held *protocol.Chain, tail []*protocol.Record) (*protocol.Chain, error) {
			heldView := viewOf(held)
			got, err := protocol.Update(held, tail)
			if !viewOf(held).equal(heldView) {
				t.Fatal("Update changed the held chain")
			}
			if err != nil {
				if got != nil {
					t.Fatalf("Update refused (%v) with a result", err)
				}
				return nil, err
			}
			if got.Conversation != held.Conversation || got.Seq < held.Seq {
				t.Fatalf("Update accepted a chain at %d for a holder at %d", got.Seq, held.Seq)
			}
			if h, _ := got.HashAt(held.Seq); h != held.Head {
				t.Fatalf("Update accepted a chain that forks from the held one at record %d", held.Seq)
			}
			return got, nil
		}
		if base != nil {
			// The holder of the vector's first k records: the records as
			// an extension, and as a whole chain (which may fork).
			got, err := update(base, recs)
			if (err == nil) != allFrom[0] || (err == nil && !viewOf(got).equal(viewOf(c))) {
				t.Fatalf("holder at record %d: Update gives %v, applying one by one %v", base.Seq, err, allFrom[0])
			}
			if !viewOf(base).equal(baseView) {
				t.Fatal("a vector chain changed")
			}
			whole := append(slices.Clip(fx.vector[:k]), recs...)
			update(base, whole)
			if control&0x40 != 0 {
				// The holder of the whole vector chain accepts only what
				// contains it (update checks that), which these records,
				// unless they are the vector's own, never do.
				got, err := update(vectorAt[n], whole)
				same := len(whole) >= n
				for i := 0; same && i < n; i++ {
					same = whole[i].Hash() == fx.vector[i].Hash()
				}
				if (err == nil) != (same && allFrom[0]) || (err == nil && !viewOf(got).equal(viewOf(c))) {
					t.Fatalf("holder of the vector chain: Update gives %v; the records are the vector's own: %v", err, same)
				}
			}
			return
		}
		// A holder with nothing gets what VerifyChain gives: the chain
		// exactly when every record applied one by one.
		full, err := protocol.Update(nil, recs)
		if (err == nil) != allFrom[0] || (err == nil && !viewOf(full).equal(viewOf(c))) {
			t.Fatalf("Update(nil): %v; all applied one by one: %v", err, allFrom[0])
		}
		// The holder of this input's first h records accepts the records
		// after them exactly when they all applied one by one, and gets the
		// same chain; whoever holds the whole chain refuses a prefix.
		h := min(int(control&0x3f), len(recs))
		if h == 0 || !accepted[h-1] {
			return
		}
		got, err := update(chains[h-1], recs[h:])
		if (err == nil) != allFrom[h] || (err == nil && !viewOf(got).equal(viewOf(c))) {
			t.Fatalf("holder at record %d: Update gives %v, applying one by one %v", chains[h-1].Seq, err, allFrom[h])
		}
		if allFrom[0] && h < len(recs) {
			if _, err := protocol.Update(c, recs[:h]); !errors.Is(err, protocol.ErrRollback) {
				t.Fatalf("holder at record %d accepted the prefix up to %d: %v", c.Seq, h-1, err)
			}
		}
	})
}
