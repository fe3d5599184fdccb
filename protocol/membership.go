package protocol

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"

	"sandi.dev/protocol/internal/wire"
)

// Op is the kind of a membership record (§6.1).
type Op uint8

// Membership operations.
const (
	OpCreate Op = 1 // genesis: the creator and the initial members
	OpAdd    Op = 2 // an admin adds members
	OpRemove Op = 3 // an admin removes members (not itself: that is OpLeave)
	OpLeave  Op = 4 // a member leaves
	OpRole   Op = 5 // an admin changes members' roles
	OpRekey  Op = 6 // a member announces its new identity key, signed by that key
	// OpRekeyCosigned is a rekey that an earlier key of the member co-signs
	// (§6.2): the current key (the role is kept) or the key the member had
	// before a rekey it did not co-sign (that role is restored).
	OpRekeyCosigned Op = 7
)

// IsRekey reports whether o replaces its author's identity key (OpRekey or
// OpRekeyCosigned): an identity change that clients show (§6.2).
func (o Op) IsRekey() bool { return o == OpRekey || o == OpRekeyCosigned }

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpAdd:
		return "add"
	case OpRemove:
		return "remove"
	case OpLeave:
		return "leave"
	case OpRole:
		return "role"
	case OpRekey:
		return "rekey"
	case OpRekeyCosigned:
		return "rekey-cosigned"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Role is a member's authority in a conversation.
type Role uint8

// Roles. An admin may add, remove and change roles; any member may leave.
const (
	RoleMember Role = 1
	RoleAdmin  Role = 2
)

func (r Role) String() string {
	switch r {
	case RoleMember:
		return "member"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// MaxMembers caps the members of a conversation and of one record.
const MaxMembers = 1000

// Member is one member of a conversation as the chain records it: the
// identity key is the one the adding member saw and vouched for.
type Member struct {
	User     UserID
	Identity IdentityKey
	Role     Role
}

// Record is one signed link of a conversation's membership chain (§6.1).
type Record struct {
	Op           Op
	Conversation ConversationID
	Seq          uint64         // 0 for the genesis record, then +1 per record
	Prev         [HashSize]byte // hash of record Seq-1; zero for genesis
	Time         int64          // Unix milliseconds, as the author's clock said
	Author       UserID
	Members      []Member // create, add, role, rekey, rekey-cosigned
	Users        []UserID // remove
	// Cosigner and Cosignature exist in an OpRekeyCosigned record only
	// (zero otherwise): the earlier identity key of the author that vouches
	// for the new one, and its signature over CosignedData.
	Cosigner    IdentityKey
	Cosignature [SignatureSize]byte
	Signature   [SignatureSize]byte
}

// Errors of chain verification.
var (
	ErrUnauthorized = errors.New("membership change not allowed")
	ErrFork         = errors.New("membership chain forks from the one held")
	ErrRollback     = errors.New("membership chain is older than the one held")
	ErrBadChain     = errors.New("invalid membership chain")
)

// encode writes the record; the co-signature and the signature are written
// only when asked for (the data each key signs leaves them out).
func (rec *Record) encode(w *wire.Builder, withCosig, withSig bool) {
	w.U8(Version)
	w.U8(uint8(rec.Op))
	w.Fixed(rec.Conversation[:])
	w.U64(rec.Seq)
	w.Fixed(rec.Prev[:])
	w.U64(uint64(rec.Time))
	w.Fixed(rec.Author[:])
	w.U16(uint16(len(rec.Members)))
	for _, m := range rec.Members {
		w.Fixed(m.User[:])
		w.Fixed(m.Identity[:])
		w.U8(uint8(m.Role))
	}
	w.U16(uint16(len(rec.Users)))
	for _, u := range rec.Users {
		w.Fixed(u[:])
	}
	if rec.Op == OpRekeyCosigned {
		w.Fixed(rec.Cosigner[:])
		if withCosig {
			w.Fixed(rec.Cosignature[:])
		}
	}
	if withSig {
		w.Fixed(rec.Signature[:])
	}
}

func (rec *Record) size() int {
	n := 2 + IDSize + 8 + HashSize + 8 + IDSize + 2 + len(rec.Members)*(2*IDSize+1) + 2 + len(rec.Users)*IDSize + SignatureSize
	if rec.Op == OpRekeyCosigned {
		n += IdentityKeySize + SignatureSize
	}
	return n
}

// SignedData is what the author's identity key signs (for a rekey, the new
// key): LabelRecord followed by the encoding without the signature. For an
// OpRekeyCosigned record it includes the cosigner and the co-signature.
func (rec *Record) SignedData() []byte {
	w := wire.NewBuilder(len(LabelRecord) + rec.size())
	w.Fixed([]byte(LabelRecord))
	rec.encode(w, true, false)
	return w.Bytes()
}

// CosignedData is what the cosigner of an OpRekeyCosigned record signs:
// LabelRekeyCosign followed by the encoding without the co-signature and
// the signature (§6.1).
func (rec *Record) CosignedData() []byte {
	w := wire.NewBuilder(len(LabelRekeyCosign) + rec.size())
	w.Fixed([]byte(LabelRekeyCosign))
	rec.encode(w, false, false)
	return w.Bytes()
}

// Marshal returns the encoding of §6.1.
func (rec *Record) Marshal() []byte {
	w := wire.NewBuilder(rec.size())
	rec.encode(w, true, true)
	return w.Bytes()
}

// Hash is SHA-256(LabelRecordHash || Marshal()); the next record names it.
func (rec *Record) Hash() [HashSize]byte {
	h := sha256.New()
	h.Write([]byte(LabelRecordHash))
	h.Write(rec.Marshal())
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// ParseRecord decodes a record; it checks structure, not authority.
func ParseRecord(b []byte) (*Record, error) {
	r := wire.NewReader(b)
	var rec Record
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	rec.Op = Op(r.U8("op"))
	if r.Err() == nil && (rec.Op < OpCreate || rec.Op > OpRekeyCosigned) {
		r.Fail("unknown op %d", rec.Op)
	}
	r.FixedInto(rec.Conversation[:], "conversation id")
	rec.Seq = r.U64("seq")
	r.FixedInto(rec.Prev[:], "previous hash")
	rec.Time = int64(r.U64("time"))
	r.FixedInto(rec.Author[:], "author")
	if n := r.Count(MaxMembers, "members"); n > 0 {
		rec.Members = make([]Member, n)
		for i := 0; i < n && r.Err() == nil; i++ {
			m := &rec.Members[i]
			r.FixedInto(m.User[:], "member user")
			readIdentity(r, &m.Identity, "member identity")
			m.Role = Role(r.U8("member role"))
			if r.Err() == nil && m.Role != RoleMember && m.Role != RoleAdmin {
				r.Fail("unknown role %d", m.Role)
			}
		}
	}
	if n := r.Count(MaxMembers, "users"); n > 0 {
		rec.Users = make([]UserID, n)
		for i := 0; i < n && r.Err() == nil; i++ {
			r.FixedInto(rec.Users[i][:], "user")
		}
	}
	if rec.Op == OpRekeyCosigned {
		readIdentity(r, &rec.Cosigner, "cosigner")
		readSignature(r, &rec.Cosignature, "co-signature")
	}
	readSignature(r, &rec.Signature, "signature")
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("membership record: %w", err)
	}
	return &rec, nil
}

// Chain is the verified state of a conversation's membership after some
// prefix of its records. It is immutable: Apply returns a new Chain.
type Chain struct {
	Conversation ConversationID
	Seq          uint64         // seq of the last record applied
	Head         [HashSize]byte // hash of the last record applied
	members      map[UserID]Member
	// rekeyed holds, for a member whose current key came through a rekey
	// that the key it replaced did not co-sign, the key and role it had
	// just before the first such rekey (§6.2).
	rekeyed map[UserID]Member
	hashes  [][HashSize]byte // hashes[i] is the hash of record i
}

// Member returns u's entry, if u is a member.
func (c *Chain) Member(u UserID) (Member, bool) {
	m, ok := c.members[u]
	return m, ok
}

// Rekeyed reports whether member u's current identity key came through a
// rekey that the key it replaced did not co-sign (an OpRekey record, signed
// by the new key alone, which a server can forge), and if so returns the
// key and the role u had just before the first such rekey. It stays so
// through later rekeys, co-signed by the current key or not, until a rekey
// co-signed by prev restores prevRole (§6.2), or u leaves or is removed.
// ok is false for a member whose key was vouched for all along: by the
// record that added it, or by rekeys each co-signed by the key before it.
//
// A client uses it to tell a member's key that the member's earlier key
// vouched for from one that only the new key (perhaps the server's) did,
// and, for its own account, to find the key that can restore its role.
func (c *Chain) Rekeyed(u UserID) (prev IdentityKey, prevRole Role, ok bool) {
	m, ok := c.rekeyed[u]
	return m.Identity, m.Role, ok
}

// Members returns the current members sorted by user id.
func (c *Chain) Members() []Member {
	out := slices.Collect(maps.Values(c.members))
	slices.SortFunc(out, func(a, b Member) int { return bytes.Compare(a.User[:], b.User[:]) })
	return out
}

// HashAt returns the hash of record seq, which the chain has verified.
func (c *Chain) HashAt(seq uint64) ([HashSize]byte, bool) {
	if seq >= uint64(len(c.hashes)) {
		return [HashSize]byte{}, false
	}
	return c.hashes[seq], true
}

func chainErr(rec *Record, format string, args ...any) error {
	return fmt.Errorf("%w: record %d (%s): %s", ErrBadChain, rec.Seq, rec.Op, fmt.Sprintf(format, args...))
}

func authErr(rec *Record, format string, args ...any) error {
	return fmt.Errorf("%w: record %d (%s): %s", ErrUnauthorized, rec.Seq, rec.Op, fmt.Sprintf(format, args...))
}

// Genesis verifies a creation record and returns the chain it starts.
func Genesis(rec *Record) (*Chain, error) {
	if rec.Op != OpCreate {
		return nil, chainErr(rec, "first record must create")
	}
	if rec.Seq != 0 || rec.Prev != ([HashSize]byte{}) {
		return nil, chainErr(rec, "genesis must have seq 0 and no previous hash")
	}
	if rec.Conversation.IsZero() || len(rec.Users) != 0 || len(rec.Members) == 0 || len(rec.Members) > MaxMembers || hasCosignature(rec) {
		return nil, chainErr(rec, "malformed genesis")
	}
	c := &Chain{Conversation: rec.Conversation, members: make(map[UserID]Member, len(rec.Members))}
	for _, m := range rec.Members {
		if err := checkNewMember(rec, c, m); err != nil {
			return nil, err
		}
		c.members[m.User] = m
	}
	author, ok := c.members[rec.Author]
	if !ok || author.Role != RoleAdmin {
		return nil, authErr(rec, "creator must be an admin member")
	}
	if err := author.Identity.Verify(rec.SignedData(), rec.Signature[:]); err != nil {
		return nil, authErr(rec, "creator signature: %v", err)
	}
	c.Head = rec.Hash()
	c.hashes = [][HashSize]byte{c.Head}
	return c, nil
}

// hasCosignature reports a co-signature field set on a record whose op has
// none: such a record's encoding would drop it.
func hasCosignature(rec *Record) bool {
	return rec.Cosigner != (IdentityKey{}) || rec.Cosignature != [SignatureSize]byte{}
}

func checkNewMember(rec *Record, c *Chain, m Member) error {
	if m.User.IsZero() {
		return chainErr(rec, "zero user id")
	}
	if _, err := ParseIdentityKey(m.Identity[:]); err != nil {
		return chainErr(rec, "member %s: %v", m.User, err)
	}
	if m.Role != RoleMember && m.Role != RoleAdmin {
		return chainErr(rec, "member %s: bad role", m.User)
	}
	if _, dup := c.members[m.User]; dup {
		return chainErr(rec, "user %s is already a member", m.User)
	}
	return nil
}

// Apply verifies rec as the next record of c and returns the extended chain.
// c is unchanged.
func (c *Chain) Apply(rec *Record) (*Chain, error) {
	if rec.Conversation != c.Conversation {
		return nil, chainErr(rec, "record of another conversation")
	}
	if rec.Seq != c.Seq+1 || rec.Prev != c.Head {
		return nil, chainErr(rec, "does not follow record %d", c.Seq)
	}
	author, ok := c.members[rec.Author]
	if !ok {
		return nil, authErr(rec, "author %s is not a member", rec.Author)
	}
	if rec.Op != OpRekeyCosigned && hasCosignature(rec) {
		return nil, chainErr(rec, "a co-signature on a record that has none")
	}
	signer := author.Identity
	next := &Chain{Conversation: c.Conversation, Seq: rec.Seq, members: maps.Clone(c.members), rekeyed: maps.Clone(c.rekeyed)}
	switch rec.Op {
	case OpAdd:
		if author.Role != RoleAdmin {
			return nil, authErr(rec, "only an admin may add")
		}
		if len(rec.Members) == 0 || len(rec.Users) != 0 {
			return nil, chainErr(rec, "malformed add")
		}
		if len(c.members)+len(rec.Members) > MaxMembers {
			return nil, chainErr(rec, "more than %d members", MaxMembers)
		}
		for _, m := range rec.Members {
			if err := checkNewMember(rec, next, m); err != nil {
				return nil, err
			}
			next.members[m.User] = m
		}
	case OpRemove:
		if author.Role != RoleAdmin {
			return nil, authErr(rec, "only an admin may remove")
		}
		if len(rec.Users) == 0 || len(rec.Members) != 0 {
			return nil, chainErr(rec, "malformed remove")
		}
		for _, u := range rec.Users {
			if u == rec.Author {
				return nil, chainErr(rec, "an admin leaves with a leave record")
			}
			if _, ok := next.members[u]; !ok {
				return nil, chainErr(rec, "user %s is not a member", u)
			}
			delete(next.members, u)
			delete(next.rekeyed, u)
		}
	case OpLeave:
		if len(rec.Users) != 0 || len(rec.Members) != 0 {
			return nil, chainErr(rec, "malformed leave")
		}
		delete(next.members, rec.Author)
		delete(next.rekeyed, rec.Author)
	case OpRole:
		if author.Role != RoleAdmin {
			return nil, authErr(rec, "only an admin may change roles")
		}
		if len(rec.Members) == 0 || len(rec.Users) != 0 {
			return nil, chainErr(rec, "malformed role change")
		}
		seen := map[UserID]bool{}
		for _, m := range rec.Members {
			cur, ok := c.members[m.User]
			if !ok || seen[m.User] || !cur.Identity.Equal(m.Identity) || (m.Role != RoleMember && m.Role != RoleAdmin) {
				return nil, chainErr(rec, "bad role change for %s", m.User)
			}
			seen[m.User] = true
			next.members[m.User] = m
		}
	case OpRekey, OpRekeyCosigned:
		if len(rec.Members) != 1 || len(rec.Users) != 0 {
			return nil, chainErr(rec, "malformed rekey")
		}
		m := rec.Members[0]
		if m.User != rec.Author {
			return nil, authErr(rec, "a member may only rekey itself")
		}
		if _, err := ParseIdentityKey(m.Identity[:]); err != nil {
			return nil, chainErr(rec, "new identity: %v", err)
		}
		if err := applyRekey(rec, author, next); err != nil {
			return nil, err
		}
		signer = m.Identity // the new key signs: it proves its holder made the record
		next.members[m.User] = m
	default:
		return nil, chainErr(rec, "op not allowed after genesis")
	}
	if err := signer.Verify(rec.SignedData(), rec.Signature[:]); err != nil {
		return nil, authErr(rec, "signature of %s: %v", rec.Author, err)
	}
	next.Head = rec.Hash()
	next.hashes = append(slices.Clip(c.hashes), next.Head)
	return next, nil
}

// applyRekey checks the role and the co-signature of a rekey by author
// (its entry before the record) and updates next.rekeyed (§6.2):
//
//   - OpRekey, signed by the new key alone (a server can make one): the
//     author becomes a plain member, and the chain remembers the key and
//     role it had, unless it remembers an earlier pair already.
//   - OpRekeyCosigned by the key the chain remembered for the author:
//     restores the role remembered, and forgets the pair.
//   - OpRekeyCosigned by the author's current key: keeps the role.
//
// Any other cosigner is refused. A server, which holds neither an earlier
// key nor the current key of an honest member, gains no role this way, and
// cannot stop the member from restoring its own.
func applyRekey(rec *Record, author Member, next *Chain) error {
	m := rec.Members[0]
	prev, forged := next.rekeyed[m.User]
	if rec.Op == OpRekey {
		if m.Role != RoleMember {
			return authErr(rec, "a rekey signed by the new key alone makes its author a plain member")
		}
		if m.Identity.Equal(author.Identity) {
			return chainErr(rec, "rekey to the same identity")
		}
		if !forged {
			if next.rekeyed == nil {
				next.rekeyed = map[UserID]Member{}
			}
			next.rekeyed[m.User] = author
		}
		return nil
	}
	var role Role
	switch {
	case forged && rec.Cosigner.Equal(prev.Identity):
		role = prev.Role
		delete(next.rekeyed, m.User)
	case rec.Cosigner.Equal(author.Identity):
		if m.Identity.Equal(author.Identity) {
			return chainErr(rec, "rekey to the same identity")
		}
		role = author.Role
	default:
		return authErr(rec, "co-signed by a key that is neither %s's current one nor the one it had before a rekey it did not co-sign", rec.Author)
	}
	if m.Role != role {
		return authErr(rec, "a co-signed rekey gives role %s, the record says %s", role, m.Role)
	}
	if err := rec.Cosigner.Verify(rec.CosignedData(), rec.Cosignature[:]); err != nil {
		return authErr(rec, "co-signature: %v", err)
	}
	return nil
}

// VerifyChain verifies a whole chain from its genesis record.
func VerifyChain(records []*Record) (*Chain, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadChain)
	}
	c, err := Genesis(records[0])
	if err != nil {
		return nil, err
	}
	return c.Extend(records[1:])
}

// Extend applies records in order and returns the resulting chain.
func (c *Chain) Extend(records []*Record) (*Chain, error) {
	var err error
	for _, rec := range records {
		if c, err = c.Apply(rec); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Update verifies records a server sent for a conversation whose chain the
// caller already holds (held may be nil on first contact). records is either
// the whole chain (starting at genesis) or the records after held.Seq. The
// result must contain held: a shorter chain is ErrRollback, one whose record
// held.Seq differs is ErrFork.
func Update(held *Chain, records []*Record) (*Chain, error) {
	if held == nil {
		return VerifyChain(records)
	}
	var next *Chain
	var err error
	if len(records) > 0 && records[0].Seq == 0 {
		if next, err = VerifyChain(records); err != nil {
			return nil, err
		}
	} else if next, err = held.Extend(records); err != nil {
		return nil, err
	}
	if next.Conversation != held.Conversation {
		return nil, fmt.Errorf("%w: another conversation", ErrFork)
	}
	if next.Seq < held.Seq {
		return nil, fmt.Errorf("%w: at record %d, held %d", ErrRollback, next.Seq, held.Seq)
	}
	if h, _ := next.HashAt(held.Seq); h != held.Head {
		return nil, fmt.Errorf("%w at record %d", ErrFork, held.Seq)
	}
	return next, nil
}
