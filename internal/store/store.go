// Package store is sandi's storage: one interface, Store, with a SQLite
// implementation (the embedded default) and a PostgreSQL one, which pass the
// same conformance suite (storetest). Every multi-row invariant of the server
// is one call here and one database transaction.
//
// The store keeps protocol objects as the bytes the clients signed; it does
// not parse or verify them (the server does that before calling). Times are
// Unix milliseconds passed in by the caller.
package store

import (
	"context"
	"errors"

	"sandi.dev/protocol"
)

// Errors callers branch on. Implementations wrap them with context.
var (
	ErrNotFound         = errors.New("not found")
	ErrConflict         = errors.New("conflict")          // unique key taken (username, conversation id, epoch)
	ErrIdentityMismatch = errors.New("identity mismatch") // bundle identity differs from the account's
	ErrStaleChain       = errors.New("stale membership chain")
	ErrEpochTaken       = errors.New("epoch already exists")
	ErrStaleEpoch       = errors.New("epoch is not the current one or rotation is required")
	ErrIdempotency      = errors.New("client message id reused with a different body")
	ErrNotMember        = errors.New("not a member")
	// ErrStaleState is a conversation state whose version is not newer
	// than the stored one (see StateUpdate).
	ErrStaleState = errors.New("stale conversation state")
	// ErrStaleDeviceList is a device list update made against a list that
	// is no longer the stored one.
	ErrStaleDeviceList = errors.New("stale device list")
	// ErrInvalid is a request that contradicts itself or the store's rules
	// in a way the server should have refused before calling (a wrong
	// genesis seq or first epoch, an empty wrapped key, a duplicate member).
	ErrInvalid = errors.New("invalid request")
	// ErrTooManyKeys is an upload that would leave a device more one-time
	// pre-keys than the cap its caller passed.
	ErrTooManyKeys = errors.New("too many one-time pre-keys")
	// ErrFull is a write refused because the database's disk is full
	// (SQLite's SQLITE_FULL, PostgreSQL's disk_full); nothing was written.
	ErrFull = errors.New("database storage full")
)

// User is an account.
type User struct {
	ID           protocol.UserID
	Username     string // canonical (lower-case) form
	PasswordHash string // argon2id, PHC string format
	Identity     *protocol.IdentityKey
	CreatedAt    int64
}

// Device is one device of an account. SignedPreKey and LastResort are
// encoded protocol.PreKey values (nil until the first bundle upload).
type Device struct {
	ID           protocol.DeviceID
	User         protocol.UserID
	Name         string
	SignedPreKey []byte
	LastResort   []byte
	CreatedAt    int64
	Revoked      bool
	// Unlisted is set (by Devices) when the account has a device list that
	// does not name this device: it is then not served to sealers.
	Unlisted bool
	// TokenUsedAt is set by DeviceByToken: when the token was last
	// recorded as used (TouchToken, or its creation); 0 for a token from
	// before uses were recorded.
	TokenUsedAt int64
}

// Login is one signed-in device of an account (a session), as Logins
// lists it.
type Login struct {
	Device Device // with Unlisted set as Devices sets it
	// LastUsed is the latest recorded use of any of its tokens (0: none
	// recorded); Tokens is how many tokens it has (0: all expired).
	LastUsed int64
	Tokens   int
}

// PreKeyRow is one encoded one-time pre-key.
type PreKeyRow struct {
	ID      uint32
	Encoded []byte // protocol.PreKey encoding
}

// BundleUpload is a device's verified bundle, decomposed.
type BundleUpload struct {
	User         protocol.UserID
	Device       protocol.DeviceID
	Identity     protocol.IdentityKey
	SignedPreKey []byte
	LastResort   []byte
	OneTime      []PreKeyRow
	// Reset, when true, replaces the account's identity key even if it
	// differs, revokes every other device of the account (deleting their
	// tokens and one-time keys) and, if the key changed, emits an
	// identity_changed event (User = the account) to every active device
	// of every user that shares a conversation with the account.
	Reset bool
	// MaxOneTime, when > 0, caps the device's one-time keys: an upload
	// after which the device would hold more (counting only ids it does
	// not hold yet) is ErrTooManyKeys, and nothing is stored.
	MaxOneTime int
	Now        int64
}

// DeviceListRow is an account's latest signed device list (protocol.md
// §12), as the server verified it.
type DeviceListRow struct {
	Seq     uint64
	Encoded []byte
}

// DeviceListUpdate replaces an account's device list and revokes the
// devices it removes, in one transaction (see Store.PutDeviceList).
type DeviceListUpdate struct {
	User protocol.UserID
	// Identity is the key the server verified the list under; it must
	// still be the account's (else ErrIdentityMismatch).
	Identity protocol.IdentityKey
	// PrevSeq is the seq of the stored list the server checked the new one
	// against (0: none). If the stored list is another one by then, the
	// update is ErrStaleDeviceList; Seq must be greater than PrevSeq.
	PrevSeq uint64
	Seq     uint64
	Encoded []byte
	// Devices are the devices the list names; each must be a device of
	// User, revoked or not (else ErrNotFound).
	Devices []protocol.DeviceID
	// Revoke are devices of User to revoke even if the previous list did
	// not name them (a device logging out, one that never was listed).
	Revoke []protocol.DeviceID
	Now    int64
}

// Claimed is what claiming a device's keys returns: its signed pre-key and
// last-resort key, and a one-time pre-key unless none was left (then
// OneTime is nil and the claimer wraps to the signed pre-key instead).
type Claimed struct {
	Device       protocol.DeviceID
	SignedPreKey []byte
	LastResort   []byte
	OneTime      *PreKeyRow
	// Remaining is how many one-time keys the device has left after this claim.
	Remaining int
}

// Conversation is a conversation's server-side state.
type Conversation struct {
	ID               protocol.ConversationID
	CreatedAt        int64
	ChainSeq         uint64   // seq of the last membership record
	ChainHead        [32]byte // its hash
	Epoch            uint64   // current epoch (0 before the first)
	EpochStartedAt   int64
	MessagesInEpoch  int
	RotationRequired bool
	RotationReason   string // "membership", "device", "identity", "policy", or ""
	LastSeq          uint64 // sequence number of the last message (0 if none)
	// State is the latest conversation state record (nil if none), with
	// the epoch it is encrypted under and its version.
	State *StateRow
}

// StateRow is an encoded conversation state record (protocol.md §7.6)
// with the epoch and version its clear header names (the server parses
// them; the store compares them).
type StateRow struct {
	Encoded []byte
	Epoch   uint64
	Version uint64
}

// StateUpdate replaces a conversation's state outside a rotation: a change
// (a rename) or a re-publication of the current state under the current
// epoch. Inside its transaction the store checks that User is a current
// member (else ErrNotMember), that State.Epoch is the current epoch and
// the conversation is not rotation-required (else ErrStaleEpoch, as
// *EpochError), and that State.Version is above the stored version, or
// equal to it with State.Epoch above the stored state's epoch (else
// ErrStaleState); then stores it and emits a conversation-wide EventState.
type StateUpdate struct {
	Conversation protocol.ConversationID
	User         protocol.UserID
	State        StateRow
	Now          int64
}

// MemberRow is a current member as the server tracks it for authorization.
type MemberRow struct {
	User protocol.UserID
	Role protocol.Role
}

// RecordRow is an encoded membership record with its place in the chain.
type RecordRow struct {
	Seq     uint64
	Encoded []byte
}

// SessionKey is one device's entry of an epoch: the initiator ephemeral key
// (HPKE enc) and the sealed epoch secret. Both are required: the schema
// cannot hold a session key without them.
type SessionKey struct {
	Device             protocol.DeviceID
	User               protocol.UserID
	PreKeyID           uint32
	InitiatorEphemeral []byte
	Ciphertext         []byte
}

// Session is one epoch of a conversation: the encoded signed distribution
// and its per-device keys, decomposed for fast per-device reads.
type Session struct {
	Conversation protocol.ConversationID
	Epoch        uint64
	ChainSeq     uint64
	Creator      protocol.DeviceID
	Encoded      []byte // protocol.Distribution encoding
	Keys         []SessionKey
	CreatedAt    int64
}

// NewConversation is everything that creating a conversation writes, in one
// transaction: the conversation, its genesis record, its members and its
// first session.
type NewConversation struct {
	ID      protocol.ConversationID
	Genesis RecordRow // seq 0
	Head    [32]byte  // hash of the genesis record
	Members []MemberRow
	Session Session // epoch 1, ChainSeq 0; Session.Creator must be a device of a member
	// State, if not nil, is the conversation's first state (epoch 1).
	State *StateRow
	Now   int64
}

// MembershipChange appends one verified record. The store checks that
// PrevSeq is the conversation's current chain seq (else ErrStaleChain) and
// that Record.Seq is PrevSeq+1 (else ErrInvalid), applies Members (the full
// member list after the record), marks the conversation rotation-required
// with reason "membership" and emits a membership event that every member
// before and after sees: a conversation-wide EventMembership (a removed
// member's view of the conversation ends with it, an added member's begins
// with it), then EventRemoved to each device of each removed member, then a
// conversation-wide EventRotation.
type MembershipChange struct {
	Conversation protocol.ConversationID
	Record       RecordRow
	PrevSeq      uint64
	Head         [32]byte
	Members      []MemberRow // the members after this record
	Now          int64
}

// NewSession is a rotation: the next epoch. Inside its transaction the store
// checks, in this order, that Epoch == current+1 (else ErrEpochTaken, with
// the current epoch in the error via EpochError), that ChainSeq equals the
// conversation's chain seq (else ErrStaleChain), that the keys cover exactly
// the member devices (else *CoverageError) and that Creator is one of them
// (else ErrNotMember); then clears rotation-required, resets the epoch
// counters and emits a session event to each recipient device.
//
// State, if not nil, is the conversation's state re-published under the
// new epoch (State.Epoch must be Session.Epoch, else ErrInvalid); its
// version must be at least the stored one (else ErrStaleState). Without
// it the stored state stays as it is, under its older epoch; with it, a
// conversation-wide EventState follows the session events (as
// NewConversation.State emits one after the first epoch's).
type NewSession struct {
	Session Session
	State   *StateRow
	Now     int64
}

// CoverageError reports a session whose keys do not cover exactly the
// devices of the current members (active devices that have uploaded a
// bundle, that their account's device list, if it has one, names, and that
// are not dormant by protocol.md §5.3 at the write's Now; a device within
// protocol.DormancySlack of its dormancy time may be covered or not). It
// wraps ErrCoverage.
type CoverageError struct {
	Missing []protocol.DeviceID // member devices without a key
	Extra   []protocol.DeviceID // keys for devices that are not member devices
}

// ErrCoverage is wrapped by CoverageError.
var ErrCoverage = errors.New("session does not cover exactly the member devices")

func (e *CoverageError) Error() string { return ErrCoverage.Error() }
func (e *CoverageError) Unwrap() error { return ErrCoverage }

// EpochError carries the current epoch with ErrEpochTaken or ErrStaleEpoch.
type EpochError struct {
	Err     error
	Current uint64
}

func (e *EpochError) Error() string { return e.Err.Error() }
func (e *EpochError) Unwrap() error { return e.Err }

// Send is one message to append. Sender must be an active device of
// SenderUser and SenderUser a current member (else ErrNotMember); Epoch
// must be the current epoch and the conversation not rotation-required
// (else ErrStaleEpoch).
type Send struct {
	Conversation protocol.ConversationID
	Sender       protocol.DeviceID
	SenderUser   protocol.UserID
	ClientID     string // unique per sender device
	Epoch        uint64
	Envelope     []byte
	Now          int64
	// Policy: when MessagesInEpoch reaches RotateAfterMessages (>0) or the
	// epoch is older than RotateAfterMillis (>0), the store marks the
	// conversation rotation-required (reason "policy") after this message.
	RotateAfterMessages int
	RotateAfterMillis   int64
	// Blobs are the attachment blobs the message shares: each must be a
	// complete blob of Conversation uploaded by SenderUser (else the item
	// is ErrBadBlob); the stored message references them.
	Blobs []string
	// ExpiresAt (Unix ms, 0: never) is when the message disappears: from
	// then on DeleteExpiredMessages deletes it (protocol.md §13.10).
	ExpiresAt int64
	// Check, if set, is a check of the message that may still be running
	// (the server's verification of the envelope's signature): it waits
	// for the check's end and returns its answer, the same at every call.
	// The store writes the message in a transaction that commits only
	// after Check returned nil, and stores nothing of it otherwise: the
	// item's Err is then Check's error. The store may run the message's
	// statements while the check runs.
	Check func() error
}

// SendResult is the outcome of one Send in a batch.
type SendResult struct {
	Seq       uint64 // the message's sequence number in its conversation
	EventID   int64  // its event id in the sync stream
	CreatedAt int64
	Duplicate bool  // a retry of an already stored message: first result returned
	Err       error // ErrNotMember, ErrStaleEpoch (as *EpochError), ErrIdempotency, ErrNotFound, ErrBadBlob
}

// Message is a stored message.
type Message struct {
	Conversation protocol.ConversationID
	Seq          uint64
	Sender       protocol.DeviceID
	SenderUser   protocol.UserID
	ClientID     string
	Epoch        uint64
	Envelope     []byte
	CreatedAt    int64
}

// Event kinds of the sync stream.
const (
	EventMessage         = "message"           // Conversation, Seq
	EventSession         = "session"           // Conversation, Epoch: a new epoch with a key for this device
	EventMembership      = "membership"        // Conversation, Seq (chain seq)
	EventRotation        = "rotation_required" // Conversation, Epoch (current), Reason
	EventIdentityChanged = "identity_changed"  // User
	EventDevice          = "device"            // User: a device of a contact was added or revoked
	EventPreKeysLow      = "prekeys_low"       // Device: this device should upload one-time keys
	EventRemoved         = "removed"           // Conversation: this device's user is no longer a member
	EventSessionAdded    = "session_added"     // User (the account), Reason (the new device's id): a login added a device to the account
	EventState           = "state"             // Conversation, Epoch (the state's), Seq (its version): the conversation's state changed
)

// An event is addressed either to one device (session, identity_changed,
// device, prekeys_low, removed, session_added) or to a whole conversation (message,
// membership, rotation_required, state). A device sees its own events and the
// conversation-wide events of every conversation its user was a member of
// at the time of the event: from the event that added the user up to and
// including the one that removed it.

// Event is one entry of a device's sync stream. IDs increase in commit
// order: a reader that saw event N will never later see a new event < N.
type Event struct {
	ID           int64
	Kind         string
	Conversation *protocol.ConversationID
	User         *protocol.UserID
	Seq          uint64
	Epoch        uint64
	Reason       string
	Message      *Message // for EventMessage
	CreatedAt    int64
}

// Incarnation names one history of a database. A restore from a backup
// begins a new one: what the old incarnation wrote after the backup is
// gone, and event ids after Base are reused for other events. Clients hold
// the id they last saw and resynchronise when it changes (api.md, Sync).
type Incarnation struct {
	ID        [16]byte // random
	Base      int64    // the newest event id when it began (0 for the first)
	CreatedAt int64
}

// Store is sandi's storage. All methods are safe for concurrent use.
type Store interface {
	Links
	Blobs
	Archives
	Contacts

	// Incarnation returns the current incarnation (the last of
	// Incarnations), as it was when the store opened or after its own
	// NewIncarnation. Opening a database that has none creates the first.
	Incarnation() Incarnation
	// Incarnations returns every incarnation of the database, oldest first.
	Incarnations(ctx context.Context) ([]Incarnation, error)
	// NewIncarnation begins a new incarnation (a random id, Base = the
	// newest event id) and returns it.
	NewIncarnation(ctx context.Context, now int64) (Incarnation, error)

	// CreateUser creates an account and its first device with a token.
	// A taken username (or user, device or token id) is ErrConflict.
	CreateUser(ctx context.Context, u User, d Device, tokenHash []byte) error
	// UserByName returns the account with that canonical username.
	UserByName(ctx context.Context, username string) (User, error)
	// User returns an account by id.
	User(ctx context.Context, id protocol.UserID) (User, error)
	// AddDevice adds a device with a token to an existing account (the
	// token's last use is d.CreatedAt) and emits EventSessionAdded to each
	// other active device of the account. With max > 0, an account that
	// already has max devices not revoked is ErrTooManyDevices and nothing
	// is written.
	AddDevice(ctx context.Context, d Device, tokenHash []byte, max int) error
	// PurgeDevices deletes the link requests of user's revoked devices,
	// then those of its revoked devices that nothing names any more: no
	// token, one-time key, message, session, session key, blob or device
	// list entry, with the events addressed to them. It returns how many
	// devices it deleted.
	PurgeDevices(ctx context.Context, user protocol.UserID) (int, error)
	// Logins lists an account's active devices, oldest first, with the
	// use of their tokens (ErrNotFound for an unknown account).
	Logins(ctx context.Context, user protocol.UserID) ([]Login, error)
	// TouchToken records that a token was used at now (an unknown token is
	// ErrNotFound). Callers record a use at most now and then, not on
	// every request.
	TouchToken(ctx context.Context, tokenHash []byte, now int64) error
	// SetPassword replaces an account's password hash (ErrNotFound for an
	// unknown account).
	SetPassword(ctx context.Context, user protocol.UserID, passwordHash string) error
	// Devices lists an account's devices that are not revoked, with
	// Unlisted set for those its device list does not name.
	Devices(ctx context.Context, user protocol.UserID) ([]Device, error)
	// DeviceByToken resolves a bearer token hash to its device (not revoked).
	DeviceByToken(ctx context.Context, tokenHash []byte) (Device, error)
	// DeleteToken revokes one token (logout); an unknown token is ErrNotFound.
	DeleteToken(ctx context.Context, tokenHash []byte) error
	// RevokeDevice revokes an active device of user: it is marked revoked,
	// its tokens, bundle and one-time keys are deleted. If sealers were
	// served it, the account's shared conversations are marked
	// rotation-required (reason "device") and its contacts get EventDevice,
	// as for PutDeviceList. An unknown or revoked device, or one of
	// another account, is ErrNotFound.
	RevokeDevice(ctx context.Context, user protocol.UserID, device protocol.DeviceID, now int64) error

	// DeviceList returns an account's latest device list (ErrNotFound if
	// it has none).
	DeviceList(ctx context.Context, user protocol.UserID) (DeviceListRow, error)
	// PutDeviceList stores a verified device list (see DeviceListUpdate)
	// and, in the same transaction, revokes (as RevokeDevice does) every
	// active device of the account that the previous list named and this
	// one does not, and those in Revoke. When the set of devices served to
	// sealers changes, it marks the account's shared conversations
	// rotation-required (reason "device") and emits EventDevice to its
	// contacts and its other devices. It returns the devices it revoked.
	PutDeviceList(ctx context.Context, u DeviceListUpdate) ([]protocol.DeviceID, error)

	// PutBundle stores a device's bundle and, in the same transaction, sets
	// the account's identity key if it has none. A different identity key
	// is ErrIdentityMismatch unless b.Reset (see BundleUpload). One-time
	// keys whose ids exist already are replaced. A device's first bundle,
	// the bundle of a device that was dormant (protocol.md §5.3) at b.Now,
	// and a reset that revoked devices, emit EventDevice to contacts (the
	// active devices of every user sharing a conversation with the account,
	// and the account's other devices) and mark their shared conversations
	// rotation-required (reason "device", with an EventRotation). An unknown
	// or revoked device, or one of another account, is ErrNotFound. A reset
	// also deletes the account's device list (the replaced key signed it).
	PutBundle(ctx context.Context, b BundleUpload) error
	// AddOneTimeKeys adds one-time keys to a device (ids already present are
	// ErrConflict) and returns how many it has now. With max > 0, an upload
	// after which the device would hold more than max keys is
	// ErrTooManyKeys, and nothing is stored.
	AddOneTimeKeys(ctx context.Context, device protocol.DeviceID, keys []PreKeyRow, max int) (int, error)
	// CountOneTimeKeys returns how many one-time keys a device has (0 for
	// an unknown device). The count is kept with the keys' writes: reading
	// it does not count rows.
	CountOneTimeKeys(ctx context.Context, device protocol.DeviceID) (int, error)
	// Claim atomically takes one one-time key of each device (two callers
	// never get the same key) and returns each device's keys, in the order
	// of devices. If a device's remaining count falls below lowWater,
	// EventPreKeysLow is emitted to it once until it uploads more. A device
	// that is unknown, revoked, has no bundle yet or is left out of its
	// account's device list is ErrNotFound (and nothing is claimed).
	Claim(ctx context.Context, devices []protocol.DeviceID, lowWater int, now int64) ([]Claimed, error)
	// ClaimBundles is Claim, except that the devices in signedOnly get
	// their bundle without a one-time key, and keep their keys.
	ClaimBundles(ctx context.Context, devices []protocol.DeviceID, signedOnly map[protocol.DeviceID]bool, lowWater int, now int64) ([]Claimed, error)
	// Contacts returns user and every user that shares a current
	// conversation with it, each once: the accounts whose devices get the
	// events of a change of user's devices or identity (see PutBundle).
	Contacts(ctx context.Context, user protocol.UserID) ([]protocol.UserID, error)

	// CreateConversation writes nc in one transaction. An existing id is
	// ErrConflict; an unknown member is ErrNotFound; keys that do not cover
	// exactly the devices of nc.Members (their active devices with a
	// bundle that their account's device list, if any, names) are
	// *CoverageError (checked inside the transaction); a
	// Creator that is not one of those devices is ErrNotMember. Emits
	// EventSession to every recipient device and a conversation-wide
	// EventMembership that every member sees.
	CreateConversation(ctx context.Context, nc NewConversation) error
	// Conversation returns a conversation's state.
	Conversation(ctx context.Context, id protocol.ConversationID) (Conversation, error)
	// Conversations lists the conversations a user is a member of.
	Conversations(ctx context.Context, user protocol.UserID) ([]Conversation, error)
	// Members returns a conversation's current members (ErrNotFound for an
	// unknown conversation).
	Members(ctx context.Context, id protocol.ConversationID) ([]MemberRow, error)
	// Records returns the membership records with seq >= from, in order.
	Records(ctx context.Context, id protocol.ConversationID, from uint64) ([]RecordRow, error)
	// ChangeMembership appends a membership record; see MembershipChange.
	ChangeMembership(ctx context.Context, mc MembershipChange) error
	// AddSession stores the next epoch; see NewSession.
	AddSession(ctx context.Context, ns NewSession) error
	// SetState stores a conversation's new state; see StateUpdate.
	SetState(ctx context.Context, u StateUpdate) error
	// SessionKeys returns one epoch of a conversation as seen by one
	// device: the session with its encoded distribution and, in Keys, only
	// that device's entry. ErrNotFound when the epoch does not exist or did
	// not cover the device.
	SessionKeys(ctx context.Context, conv protocol.ConversationID, device protocol.DeviceID, epoch uint64) (Session, error)

	// Send appends a batch of messages in one transaction (group commit):
	// each gets the next sequence number of its conversation. A Send that
	// fails its checks gets its Err in its result and does not abort the
	// others.
	Send(ctx context.Context, batch []Send) ([]SendResult, error)
	// SendOne appends one message. Concurrent callers are collected while
	// the previous transaction commits and written together in one
	// transaction (group commit), so durable sends are not limited to one
	// disk sync each. The returned error is the item's SendResult.Err, or
	// the batch's error, or the caller's context error (the message may
	// then still be stored: retry with the same ClientID).
	SendOne(ctx context.Context, s Send) (SendResult, error)
	// Messages pages a conversation's messages with seq > after, ascending
	// (limit <= 0 means 100).
	Messages(ctx context.Context, conv protocol.ConversationID, after uint64, limit int) ([]Message, error)
	// MemberMessages pages, like Messages, the conversation's messages
	// that user may read: those sent within its spans of membership, the
	// rule Sync applies to conversation-wide events (a message's event id
	// between a span's joined and left event ids, no upper bound while
	// current). Messages sent while user was not a member are skipped; limit
	// counts the messages returned, so an empty page is the end.
	MemberMessages(ctx context.Context, user protocol.UserID, conv protocol.ConversationID, after uint64, limit int) ([]Message, error)
	// DeleteExpiredMessages deletes up to limit messages whose ExpiresAt
	// is at or before now, the earliest first, and returns how many it
	// deleted. Their events go too, but for the newest event of all (whose
	// id LastEventID gives, and must not go back), which Sync then gives
	// without a message; their blobs are left to ExpireBlobs, which
	// collects a blob none of whose messages remain.
	DeleteExpiredMessages(ctx context.Context, now int64, limit int) (int, error)

	// Sync returns up to limit events for a device with ID > since, in
	// order (limit <= 0 means 100). See the note on addressing above.
	Sync(ctx context.Context, user protocol.UserID, device protocol.DeviceID, since int64, limit int) ([]Event, error)
	// LastEventID returns the newest event id (a new device's first cursor).
	LastEventID(ctx context.Context) (int64, error)

	// Ping checks the database is reachable (readiness).
	Ping(ctx context.Context) error
	// ConnLost reports whether err, returned by a call of the store, is
	// the connection to the database lost or refused (the database
	// stopping, restarting, or ending the connection) rather than the
	// call's own failure: the next call opens another. A write that
	// failed so may or may not have been made; a send is retried on a
	// new connection by the store (its client message id is stored
	// once), other writes are for the caller to repeat or not.
	ConnLost(err error) bool
	// Close releases the store; calling it again does nothing.
	Close() error
}
