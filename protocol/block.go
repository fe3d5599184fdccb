package protocol

import (
	"errors"
	"fmt"

	"sandi.dev/protocol/internal/wire"
)

// ErrBadBlock is a block statement that does not verify.
var ErrBadBlock = errors.New("invalid block statement")

// BlockStatementSize is the size of an encoded block statement (§16.2).
const BlockStatementSize = 1 + 2*IDSize + 1 + 8 + SignatureSize

// Block is a block statement (§16.2): the account User, signing with its
// identity key, blocks Other or no longer does, so that a server can
// neither lift a block nor add one unnoticed. Of two statements about one
// pair, the one with the later Time holds; at the same time, a block.
type Block struct {
	User      UserID // the account that blocks
	Other     UserID // the account blocked, or unblocked
	Blocked   bool
	Time      int64 // Unix milliseconds, the signer's clock
	Signature [SignatureSize]byte
}

func (b *Block) encode(w *wire.Builder, withSig bool) {
	w.U8(Version)
	w.Fixed(b.User[:])
	w.Fixed(b.Other[:])
	if b.Blocked {
		w.U8(1)
	} else {
		w.U8(0)
	}
	w.U64(uint64(b.Time))
	if withSig {
		w.Fixed(b.Signature[:])
	}
}

// SignedData is what the identity key signs: LabelBlock followed by the
// encoding without the signature.
func (b *Block) SignedData() []byte {
	w := wire.NewBuilder(len(LabelBlock) + BlockStatementSize - SignatureSize)
	w.Fixed([]byte(LabelBlock))
	b.encode(w, false)
	return w.Bytes()
}

// Marshal returns the encoding of §16.2.
func (b *Block) Marshal() []byte {
	w := wire.NewBuilder(BlockStatementSize)
	b.encode(w, true)
	return w.Bytes()
}

// ParseBlock decodes a block statement strictly (§16.2). It checks
// structure, not the signature.
func ParseBlock(in []byte) (*Block, error) {
	r := wire.NewReader(in)
	var b Block
	if v := r.U8("version"); r.Err() == nil && v != Version {
		r.Fail("version %d", v)
	}
	r.FixedInto(b.User[:], "user id")
	r.FixedInto(b.Other[:], "other user id")
	if r.Err() == nil && (b.User.IsZero() || b.Other.IsZero()) {
		r.Fail("zero id")
	}
	if r.Err() == nil && b.User == b.Other {
		r.Fail("an account cannot block itself")
	}
	switch f := r.U8("blocked"); {
	case r.Err() != nil:
	case f > 1:
		r.Fail("blocked flag %d", f)
	default:
		b.Blocked = f == 1
	}
	t := r.U64("time")
	if r.Err() == nil && t > 1<<63-1 {
		r.Fail("time %d", t)
	}
	b.Time = int64(t)
	readSignature(r, &b.Signature, "signature")
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("block statement: %w", err)
	}
	return &b, nil
}

// Verify checks that the statement is user's about other and that
// identity, user's identity key, signed it.
func (b *Block) Verify(user, other UserID, identity IdentityKey) error {
	if b.User != user || b.Other != other {
		return fmt.Errorf("%w: a statement of %s about %s, want %s about %s", ErrBadBlock, b.User, b.Other, user, other)
	}
	if _, err := ParseIdentityKey(identity[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBlock, err)
	}
	if err := identity.Verify(b.SignedData(), b.Signature[:]); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrBadBlock, err)
	}
	return nil
}

// Newer reports whether b holds over old, a statement about the same pair:
// a later time, or the same time and b a block where old is not.
func (b *Block) Newer(old *Block) bool {
	return b.Time > old.Time || b.Time == old.Time && b.Blocked && !old.Blocked
}
