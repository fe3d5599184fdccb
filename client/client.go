// Package client is sandi's Go SDK: one device of one account. It keeps the
// device's keys and protocol state in a Storage, talks to a sandi server,
// keeps pre-keys topped up, creates and rotates epochs when the server asks,
// encrypts, decrypts and resumes sync. The command-line client and the web
// client (compiled to WebAssembly) are both built on it.
//
// A Client serialises its operations: methods may be called from several
// goroutines, one runs at a time.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// Defaults of the pre-key schedule (protocol.md §5.3).
const (
	OneTimeBatch    = 100 // one-time keys uploaded at a time
	OneTimeLowWater = 20  // top up when the server reports fewer
)

// Options configure Open.
type Options struct {
	// Server is the server's base URL, e.g. http://127.0.0.1:8080. It may
	// be empty when the storage already remembers one.
	Server string
	// Storage holds the device's state. Required.
	Storage Storage
	// HTTPClient defaults to a client with a 30-second timeout. It is
	// net/http's Client; in a browser (GOOS=js), where requests go through
	// fetch, a struct with only its Timeout.
	HTTPClient *httpClient
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DeviceName names this device to the account's other devices.
	DeviceName string
	// OneTimeBatch is how many one-time pre-keys the device keeps on the
	// server (default OneTimeBatch); it tops up below a fifth of that.
	OneTimeBatch int
	// OnChange, if set, is called after Sync or Listen has processed events
	// other than messages (membership, identity and device changes), so a
	// user interface can refresh what it shows. It runs with the client
	// locked: it must not call the client.
	OnChange func()
}

// Errors callers branch on.
var (
	ErrNoAccount   = errors.New("no account on this device: register or log in first")
	ErrNoIdentity  = errors.New("this device has no identity key yet: link it from another device or reset the identity")
	ErrHasAccount  = errors.New("this device already has an account")
	ErrUnknownUser = errors.New("no such user")
	ErrNoServer    = errors.New("no server URL given")
)

// Client is one device. Create it with Open.
type Client struct {
	mu      sync.Mutex
	st      Storage
	api     *api
	now     func() time.Time
	devName string

	batch int

	acct    account
	id      *secret.IdentityPrivateKey
	prekeys map[uint32]*prekeyEntry
	convs   map[protocol.ConversationID]*convState
	pend    pending
	stats   Stats
	pins    map[protocol.UserID]*pin // the trust store (trust.go)
	refused map[string]bool          // alarms raised this run for refused keys
	held    *heldState               // messages held for pending keys (held.go), loaded when needed
	release SyncResult               // released from hold outside Sync: reported by the next one

	lives     map[protocol.ConversationID]*epochLife // expiry.go
	expiredAt int64                                  // Unix seconds of the last expiry run (0: none yet)
	// expiryDue is the earliest NextExpiry of the conversations held (0:
	// none), known once purgeAllExpired has looked at them all
	// (disappear.go): until then, and after an import, expiryKnown is
	// false.
	expiryDue   int64
	expiryKnown bool

	onChange  func()
	onReceipt func(Message) // receipts.go
	onTyping  func(Typing)  // typing.go
	lines     []Line        // timeline lines written since the last Sync result (timeline.go)
	onLine    func(Line)    // OnLine's handler
	onConnect func(bool)    // OnConnection's handler (sync.go)
}

// account is the persisted identity of the device (storage key "account").
type account struct {
	Server         string            `json:"server"`
	Username       string            `json:"username"`
	User           protocol.UserID   `json:"user,omitzero"` // zero after a logout
	Device         protocol.DeviceID `json:"device,omitzero"`
	Token          string            `json:"token"`
	Cursor         int64             `json:"cursor"`
	Incarnation    string            `json:"incarnation,omitempty"` // the server store's, as the cursor's events came from (rollback.go)
	NextPreKeyID   uint32            `json:"nextPreKeyId"`
	SignedPreKeyID uint32            `json:"signedPreKeyId"`
	LastResortID   uint32            `json:"lastResortId,omitempty"` // 0 in state from before it was recorded
	Maintained     int64             `json:"maintained"`             // Unix seconds of the last pre-key upkeep
}

// maintainEvery is how often Sync runs the pre-key upkeep on its own.
const maintainEvery = 6 * 3600

// prekeyEntry is a stored pre-key private half (storage key prekey/ID).
type prekeyEntry struct {
	Kind    protocol.PreKeyKind `json:"kind"`
	Created int64               `json:"created"`
	Retired int64               `json:"retired,omitempty"` // when a newer signed (or last-resort) key replaced it
	Seed    b64                 `json:"seed"`
	key     *secret.KEMPrivateKey
}

// Stats counts what the client met; decrypt failures are counted by class
// and never swallowed.
type Stats struct {
	Decrypted      int
	Duplicates     int
	DecryptFailed  map[string]int // by reason: expired, no_session, bad_signature, too_far_ahead, unknown_sender, server_misbehaved, identity_not_accepted, undecryptable, bad_content
	Rotations      int
	AdoptedEpochs  int
	IdentityAlerts int
	Held           int // messages held for a pending identity key when they arrived (not failures)
	Expired        int // messages whose disappearing timer ran out before they came (not shown)
}

// Open loads the device state from opts.Storage (if any).
func Open(opts Options) (*Client, error) {
	if opts.Storage == nil {
		return nil, errors.New("client: no storage")
	}
	c := &Client{st: opts.Storage, now: opts.Now, devName: opts.DeviceName,
		prekeys: map[uint32]*prekeyEntry{}, convs: map[protocol.ConversationID]*convState{}, pend: newPending(),
		pins: map[protocol.UserID]*pin{}, refused: map[string]bool{}, lives: map[protocol.ConversationID]*epochLife{}}
	c.stats.DecryptFailed = map[string]int{}
	if c.now == nil {
		c.now = time.Now
	}
	if c.devName == "" {
		c.devName = "sandi"
	}
	c.onChange = opts.OnChange
	c.batch = opts.OneTimeBatch
	if c.batch <= 0 || c.batch > OneTimeBatch {
		c.batch = OneTimeBatch
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &httpClient{Timeout: 30 * time.Second}
	}
	c.api = &api{http: hc}
	if err := c.load(); err != nil {
		return nil, err
	}
	if err := c.loadPins(); err != nil {
		return nil, err
	}
	if opts.Server != "" {
		if c.acct.Server != "" && c.acct.Server != strings.TrimRight(opts.Server, "/") && c.acct.Token != "" {
			return nil, fmt.Errorf("this device belongs to the server %s, not %s", c.acct.Server, opts.Server)
		}
		c.acct.Server = strings.TrimRight(opts.Server, "/")
	}
	c.api.base, c.api.token = c.acct.Server, c.acct.Token
	return c, nil
}

// Close releases the device state. Open takes ownership of
// Options.Storage: Close closes it when it has a Close method, which for a
// DirStorage releases the directory's lock so another process may open it.
// The client must not be used after Close.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.st.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

func (c *Client) load() error {
	// A logout interrupted during its erasure: finish it.
	if _, err := c.st.Get(logoutMark); err == nil {
		var a account
		if b, err := c.st.Get("account"); err == nil {
			_ = json.Unmarshal(b, &a) // only its server URL is kept
		}
		c.acct = account{Server: a.Server}
		if err := c.saveAccount(); err != nil {
			return fmt.Errorf("finish the logout: %w", err)
		}
		if err := c.finishLogout(); err != nil {
			return fmt.Errorf("finish the logout: %w", err)
		}
	} else if !errors.Is(err, ErrNoValue) {
		return err
	}
	// An archive import cut short: finish it or drop it.
	if err := c.recoverImport(); err != nil {
		return fmt.Errorf("finish an interrupted import: %w", err)
	}
	b, err := c.st.Get("account")
	if errors.Is(err, ErrNoValue) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &c.acct); err != nil {
		return fmt.Errorf("stored account: %w", err)
	}
	if seed, err := c.st.Get("identity"); err == nil {
		if c.id, err = secret.IdentityFromSeed(seed); err != nil {
			return fmt.Errorf("stored identity: %w", err)
		}
	} else if !errors.Is(err, ErrNoValue) {
		return err
	}
	keys, err := c.st.List("prekey/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		id, err := strconv.ParseUint(strings.TrimPrefix(k, "prekey/"), 10, 32)
		if err != nil {
			continue
		}
		b, err := c.st.Get(k)
		if err != nil {
			return err
		}
		var e prekeyEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("stored pre-key %d: %w", id, err)
		}
		if e.key, err = secret.KEMKeyFromSeed(e.Seed); err != nil {
			return fmt.Errorf("stored pre-key %d: %w", id, err)
		}
		c.prekeys[uint32(id)] = &e
	}
	return nil
}

func (c *Client) saveAccount() error {
	b, err := json.Marshal(c.acct)
	if err != nil {
		return err
	}
	return c.st.Put("account", b)
}

func (c *Client) savePreKey(id uint32, e *prekeyEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return c.st.Put("prekey/"+strconv.FormatUint(uint64(id), 10), b)
}

func (c *Client) dropPreKey(id uint32) error {
	delete(c.prekeys, id)
	return c.st.Delete("prekey/" + strconv.FormatUint(uint64(id), 10))
}

// Username returns the account's username ("" before register or login).
func (c *Client) Username() string { c.mu.Lock(); defer c.mu.Unlock(); return c.acct.Username }

// UserID returns the account id.
func (c *Client) UserID() protocol.UserID { c.mu.Lock(); defer c.mu.Unlock(); return c.acct.User }

// DeviceID returns this device's id.
func (c *Client) DeviceID() protocol.DeviceID { c.mu.Lock(); defer c.mu.Unlock(); return c.acct.Device }

// Server returns the server URL this device talks to.
func (c *Client) Server() string { c.mu.Lock(); defer c.mu.Unlock(); return c.acct.Server }

// IdentityKey returns the account's identity public key, if this device has it.
func (c *Client) IdentityKey() (protocol.IdentityKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id == nil {
		return protocol.IdentityKey{}, false
	}
	return c.id.Public(), true
}

// Stats returns a copy of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.DecryptFailed = map[string]int{}
	for k, v := range c.stats.DecryptFailed {
		s.DecryptFailed[k] = v
	}
	return s
}

func (c *Client) ref() protocol.DeviceRef {
	return protocol.DeviceRef{User: c.acct.User, Device: c.acct.Device}
}

func (c *Client) ready() error {
	if c.acct.Token == "" {
		return ErrNoAccount
	}
	if c.id == nil {
		return ErrNoIdentity
	}
	return nil
}

type authAnswer struct {
	UserID      protocol.UserID       `json:"userId"`
	DeviceID    protocol.DeviceID     `json:"deviceId"`
	Username    string                `json:"username"`
	Token       string                `json:"token"`
	IdentityKey *protocol.IdentityKey `json:"identityKey"`
	Cursor      int64                 `json:"cursor"`
}

func (c *Client) authenticate(ctx context.Context, path, username, password string) (authAnswer, error) {
	var a authAnswer
	if c.acct.Token != "" {
		return a, ErrHasAccount
	}
	if c.acct.Server == "" {
		return a, ErrNoServer
	}
	err := c.api.do(ctx, "POST", path, map[string]string{"username": username, "password": password, "deviceName": c.devName}, &a)
	if err != nil {
		return a, err
	}
	c.acct.User, c.acct.Device, c.acct.Username, c.acct.Token, c.acct.Cursor = a.UserID, a.DeviceID, a.Username, a.Token, a.Cursor
	c.acct.NextPreKeyID = 1
	c.api.token = a.Token
	if err := c.saveAccount(); err != nil {
		return a, err
	}
	// A new account on this storage: there is no older state to build the
	// identity pins from (see loadPins).
	return a, c.st.Put(pinsMarker, []byte("1"))
}

// Register creates an account with this device as its first device, draws
// the account's identity key and uploads the device's pre-keys.
func (c *Client) Register(ctx context.Context, username, password string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.authenticate(ctx, "/api/auth/register", username, password); err != nil {
		return err
	}
	id := secret.NewIdentity()
	if err := c.st.Put("identity", id.Seed()); err != nil {
		return err
	}
	c.id = id
	if err := c.uploadBundle(ctx, false, c.batch); err != nil {
		return err
	}
	// The account's first device list: this device alone (protocol.md §12).
	if _, err := c.publishDeviceList(ctx, "POST", "/api/devices/list", func([]protocol.DeviceID) []protocol.DeviceID {
		return []protocol.DeviceID{c.acct.Device}
	}); err != nil {
		return err
	}
	c.trySignOwnName(ctx) // its default name, signed (§12.5)
	return nil
}

// Login adds this device to an existing account. The device then has no
// identity key: call Link (with a code confirmed on another device) or
// ResetIdentity.
func (c *Client) Login(ctx context.Context, username, password string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.authenticate(ctx, "/api/auth/login", username, password)
	return err
}

// Logout removes this device from its account: it publishes the account's
// signed device list without it (when it holds the identity key), the
// server revokes its tokens and keys and ends its live connections, and
// the device then erases its keys and state from storage (the alarm log
// and the server URL stay). If the server cannot be reached, nothing is
// erased and the error is returned: try again.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return ErrNoAccount
	}
	if err := c.logoutServer(ctx); err != nil && !IsCode(err, "unauthenticated") && !IsCode(err, "session_expired") {
		return err
	}
	return c.forgetDevice()
}

// ResetIdentity draws a new identity key for the account, signing out its
// other devices; contacts are shown the change. Use it only when no other
// device of the account is at hand. When this device held the old key, the
// rekey it posts in each conversation is co-signed by it and keeps the
// account's role there; otherwise the account becomes a plain member, and
// RekeyBack with the old key's seed restores the roles later.
func (c *Client) ResetIdentity(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return ErrNoAccount
	}
	// The key being replaced: this device's, or (on a device that never
	// held it) the one the server names for the account. Chains that still
	// name it are this account's, not an alarm (see noteOwnReset).
	var oldKey *protocol.IdentityKey
	if c.id != nil {
		k := c.id.Public()
		oldKey = &k
	} else {
		// GET /api/me: a device without keys may read its own account.
		var me struct {
			IdentityKey *protocol.IdentityKey `json:"identityKey"`
		}
		if err := c.api.do(ctx, "GET", "/api/me", nil, &me); err != nil {
			return err
		}
		oldKey = me.IdentityKey
	}
	id := secret.NewIdentity()
	old := c.id
	c.id = id
	if err := c.uploadBundle(ctx, true, c.batch); err != nil {
		c.id = old
		return err
	}
	if err := c.st.Put("identity", id.Seed()); err != nil {
		return err
	}
	// The reset deleted the list the old key signed: the new key's first
	// list names this device alone (protocol.md §12).
	if _, err := c.publishDeviceList(ctx, "POST", "/api/devices/list", func([]protocol.DeviceID) []protocol.DeviceID {
		return []protocol.DeviceID{c.acct.Device}
	}); err != nil {
		return err
	}
	if oldKey != nil {
		if err := c.noteOwnReset(*oldKey); err != nil {
			return err
		}
	}
	c.trySignOwnName(ctx)                 // under the new key (§12.5)
	return c.rekeyConversations(ctx, old) // co-signed by old when the device held it
}

// newPreKey draws, stores and signs one pre-key.
func (c *Client) newPreKey(kind protocol.PreKeyKind) (protocol.PreKey, error) {
	id := c.acct.NextPreKeyID
	c.acct.NextPreKeyID++
	now := c.now().Unix()
	priv, pk := secret.NewPreKey(c.id, c.acct.User, c.acct.Device, kind, id, now)
	e := &prekeyEntry{Kind: kind, Created: now, Seed: priv.Seed(), key: priv}
	if err := c.savePreKey(id, e); err != nil {
		return pk, err
	}
	c.prekeys[id] = e
	return pk, nil
}

// uploadBundle uploads a fresh bundle: a signed pre-key, a last-resort key
// and n one-time keys. The keys it replaces are marked retired; expiry.go
// erases them after their grace period (§5.3).
func (c *Client) uploadBundle(ctx context.Context, reset bool, n int) error {
	b := &protocol.Bundle{User: c.acct.User, Device: c.acct.Device, Identity: c.id.Public()}
	var err error
	if b.Signed, err = c.newPreKey(protocol.SignedPreKey); err != nil {
		return err
	}
	if b.LastResort, err = c.newPreKey(protocol.LastResortPreKey); err != nil {
		return err
	}
	for range n {
		k, err := c.newPreKey(protocol.OneTimePreKey)
		if err != nil {
			return err
		}
		b.OneTime = append(b.OneTime, k)
	}
	// The ids are reserved before the upload so a retry never reuses one.
	prev, prevLR := c.acct.SignedPreKeyID, c.currentLastResort()
	c.acct.SignedPreKeyID, c.acct.LastResortID = b.Signed.ID, b.LastResort.ID
	if err := c.saveAccount(); err != nil {
		return err
	}
	if err := c.api.do(ctx, "POST", "/api/keys/prekey-bundle", map[string]any{"bundle": b64(b.Marshal()), "reset": reset}, nil); err != nil {
		c.acct.SignedPreKeyID, c.acct.LastResortID = prev, prevLR
		return err
	}
	for _, id := range []uint32{prev, prevLR} {
		if e := c.prekeys[id]; id != 0 && e != nil && e.Retired == 0 {
			e.Retired = c.now().Unix()
			if err := c.savePreKey(id, e); err != nil {
				return err
			}
		}
	}
	return c.saveAccount()
}

// MaintainPreKeys tops up one-time pre-keys when the server holds fewer
// than OneTimeLowWater, and rotates the signed pre-key and the last-resort
// key when they are older than protocol.SignedPreKeyRotation. Sync and
// Listen run it on their own, and forget replaced keys after their grace
// period (expiry.go).
func (c *Client) MaintainPreKeys(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maintainPreKeys(ctx)
}

func (c *Client) maintainPreKeys(ctx context.Context) error {
	if err := c.ready(); err != nil {
		return err
	}
	var cnt struct {
		Count int `json:"count"`
	}
	if err := c.api.do(ctx, "GET", "/api/keys/count", nil, &cnt); err != nil {
		return err
	}
	if cnt.Count < max(1, c.batch*OneTimeLowWater/OneTimeBatch) {
		var keys []b64
		for range c.batch - cnt.Count {
			k, err := c.newPreKey(protocol.OneTimePreKey)
			if err != nil {
				return err
			}
			keys = append(keys, k.Marshal())
		}
		if err := c.saveAccount(); err != nil {
			return err
		}
		if err := c.api.do(ctx, "POST", "/api/keys/one-time", map[string]any{"preKeys": keys}, nil); err != nil {
			return err
		}
	}
	now := c.now().Unix()
	if sp := c.prekeys[c.acct.SignedPreKeyID]; sp != nil && now-sp.Created > protocol.SignedPreKeyRotation {
		if err := c.uploadBundle(ctx, false, 0); err != nil {
			return err
		}
	}
	c.acct.Maintained = now
	return c.saveAccount()
}

// preKey returns the private half of one of this device's pre-keys.
func (c *Client) preKey(id uint32) (*secret.KEMPrivateKey, error) {
	e := c.prekeys[id]
	if e == nil {
		return nil, fmt.Errorf("no private key for pre-key %d", id)
	}
	return e.key, nil
}
