package secret

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"sandi.dev/protocol"
	"sandi.dev/protocol/internal/wire"
)

// The encoding of an Epoch (§8.5): its tag, and its versions. Version 2
// added the expiry mark of each chain and the time of each skipped key;
// version 1 is still read (its skipped keys get a time at the next
// ExpireSkipped).
const (
	epochStateTag = 'E'
	epochStateV1  = 1
	epochStateV2  = 2
)

func sortedRefs(m map[protocol.DeviceRef]*chain) []protocol.DeviceRef {
	refs := slices.Collect(maps.Keys(m))
	slices.SortFunc(refs, func(a, b protocol.DeviceRef) int {
		if c := bytes.Compare(a.User[:], b.User[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.Device[:], b.Device[:])
	})
	return refs
}

// MarshalBinary encodes the epoch's secret state for the client's store
// (§8.5). The result is secret: it holds chain and message keys.
func (e *Epoch) MarshalBinary() ([]byte, error) {
	w := wire.NewBuilder(64 + len(e.chains)*(2*protocol.IDSize+8+chainKeySize+2))
	w.U8(epochStateV2)
	w.U8(epochStateTag)
	w.Fixed(e.Conversation[:])
	w.U64(e.Number)
	w.Fixed(e.Self.User[:])
	w.Fixed(e.Self.Device[:])
	w.U16(uint16(len(e.chains)))
	for _, ref := range sortedRefs(e.chains) {
		c := e.chains[ref]
		w.Fixed(ref.User[:])
		w.Fixed(ref.Device[:])
		w.U32(c.next)
		w.Fixed(c.key[:])
		w.U32(c.expired)
		w.U16(uint16(len(c.skipped)))
		for _, i := range slices.Sorted(maps.Keys(c.skipped)) {
			k := c.skipped[i]
			w.U32(i)
			w.U64(uint64(c.skippedAt[i]))
			w.Fixed(k[:])
		}
	}
	return w.Bytes(), nil
}

// UnmarshalEpoch decodes an Epoch encoded by MarshalBinary (version 2) or
// by earlier code (version 1), strictly: chains and skipped counters in
// ascending order, skipped counters and the expiry mark not above the
// chain's next counter, skipped-key times below 2^63, and this device among
// the chains.
func UnmarshalEpoch(b []byte) (*Epoch, error) {
	r := wire.NewReader(b)
	v := r.U8("version")
	if r.Err() == nil && v != epochStateV1 && v != epochStateV2 {
		r.Fail("version %d", v)
	}
	if t := r.U8("tag"); r.Err() == nil && t != epochStateTag {
		r.Fail("not an epoch state")
	}
	e := &Epoch{}
	r.FixedInto(e.Conversation[:], "conversation")
	e.Number = r.U64("epoch")
	r.FixedInto(e.Self.User[:], "self user")
	r.FixedInto(e.Self.Device[:], "self device")
	n := r.Count(protocol.MaxRecipients, "chains")
	e.chains = make(map[protocol.DeviceRef]*chain, n)
	var prev *protocol.DeviceRef
	for i := 0; i < n && r.Err() == nil; i++ {
		var ref protocol.DeviceRef
		r.FixedInto(ref.User[:], "chain user")
		r.FixedInto(ref.Device[:], "chain device")
		if prev != nil && r.Err() == nil {
			if c := bytes.Compare(prev.User[:], ref.User[:]); c > 0 || (c == 0 && bytes.Compare(prev.Device[:], ref.Device[:]) >= 0) {
				r.Fail("chains not in ascending order")
			}
		}
		prev = &ref
		c := &chain{next: r.U32("next")}
		r.FixedInto(c.key[:], "chain key")
		if v == epochStateV2 {
			c.expired = r.U32("expiry mark")
			if r.Err() == nil && c.expired > c.next {
				r.Fail("expiry mark above next")
			}
		}
		m := r.Count(MaxSkip, "skipped keys")
		last := -1
		for j := 0; j < m && r.Err() == nil; j++ {
			idx := r.U32("skipped counter")
			var at uint64
			if v == epochStateV2 {
				at = r.U64("skipped key time")
			}
			var k messageKey
			r.FixedInto(k[:], "skipped key")
			if r.Err() == nil && (int(idx) <= last || idx >= c.next) {
				r.Fail("skipped counters out of order or not below next")
			}
			if r.Err() == nil && at > 1<<63-1 {
				r.Fail("skipped key time out of range")
			}
			last = int(idx)
			c.setSkipped(idx, k, int64(at))
		}
		e.chains[ref] = c
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("epoch state: %w", err)
	}
	if e.chains[e.Self] == nil {
		return nil, fmt.Errorf("epoch state: %w", ErrNotRecipient)
	}
	return e, nil
}
