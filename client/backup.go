package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"sandi.dev/protocol"
	"sandi.dev/protocol/archive"
	"sandi.dev/protocol/attach"
	"sandi.dev/protocol/secret"
)

// Encrypted backup with a recovery key (protocol.md §14.4): the device
// keeps one archive of its state, identity key included, on the server,
// encrypted under a key derived from a 128-bit recovery key that only the
// user holds (and this device, to make the next backups). A backup is a
// whole archive, uploaded again when BackupEvery has passed since the last
// (MaybeBackup) or on demand (BackupNow); the server keeps the newest one.

// BackupEvery is the least time between two automatic backups.
const BackupEvery = time.Hour

// Errors of backups and restores.
var (
	// ErrRecoveryKey: the typed text is not a recovery key (its checksum
	// catches a typo before anything is sent).
	ErrRecoveryKey = archive.ErrRecoveryKey
	// ErrWrongRecoveryKey: a recovery key, but not the backup's. Nothing
	// was written; try again with the right key.
	ErrWrongRecoveryKey = archive.ErrWrongRecoveryKey
	// ErrNoBackup: the account has no backup on the server.
	ErrNoBackup = errors.New("this account has no backup on the server")
	// ErrBackupCorrupt: the backup on the server does not decrypt whole or
	// is not a well-formed archive. Nothing was written.
	ErrBackupCorrupt = errors.New("the account's backup on the server is damaged (it does not decrypt or does not parse); nothing was restored or overwritten")
	// ErrBackupOff: backups are not enabled on this device.
	ErrBackupOff = errors.New("backups are not enabled on this device")
)

// backupKey is the storage key of this device's backup settings.
const backupKey = "backup"

type backupState struct {
	Recovery b64    `json:"recovery"` // the 16 bytes of the recovery key
	Last     int64  `json:"last"`     // Unix ms of the last upload, 0 for none
	ID       string `json:"id,omitempty"`
}

func (c *Client) backupState() (*backupState, error) {
	b, err := c.st.Get(backupKey)
	if errors.Is(err, ErrNoValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s backupState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("stored backup settings: %w", err)
	}
	return &s, nil
}

func (c *Client) saveBackupState(s *backupState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return c.st.Put(backupKey, b)
}

// BackupStatus says whether backups are on and when the last one was made
// (Unix ms, 0 for none).
func (c *Client) BackupStatus() (enabled bool, last int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.backupState()
	if s == nil || err != nil {
		return false, 0, err
	}
	return true, s.Last, nil
}

// EnableBackup draws a recovery key, makes a first backup and returns the
// key, to show the user once. Enabling again draws a new key (the old one
// then opens nothing: the server keeps only the newest backup).
func (c *Client) EnableBackup(ctx context.Context) (archive.RecoveryKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return archive.RecoveryKey{}, err
	}
	k := archive.NewRecoveryKey()
	s := &backupState{Recovery: k.Bytes()}
	if err := c.uploadBackup(ctx, s); err != nil {
		return archive.RecoveryKey{}, err
	}
	return k, nil
}

// BackupNow uploads a backup now (ErrBackupOff if backups are off).
func (c *Client) BackupNow(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	s, err := c.backupState()
	if err != nil {
		return err
	}
	if s == nil {
		return ErrBackupOff
	}
	return c.uploadBackup(ctx, s)
}

// MaybeBackup uploads a backup if backups are on and the last is older
// than BackupEvery; it reports whether it did.
func (c *Client) MaybeBackup(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready() != nil {
		return false, nil
	}
	s, err := c.backupState()
	if s == nil || err != nil || c.now().UnixMilli()-s.Last < BackupEvery.Milliseconds() {
		return false, err
	}
	return true, c.uploadBackup(ctx, s)
}

// uploadBackup uploads a whole backup under s's recovery key and a fresh
// salt, and records it. The caller holds c.mu.
func (c *Client) uploadBackup(ctx context.Context, s *backupState) error {
	k, err := archive.RecoveryKeyFromBytes(s.Recovery)
	if err != nil {
		return err
	}
	salt := make([]byte, archive.SaltSize)
	rand.Read(salt) // never fails (crypto/rand)
	header, fileKey, err := k.BackupHeader(c.acct.User, salt)
	if err != nil {
		return err
	}
	defer clear(fileKey)
	ctx, cancel := context.WithTimeout(ctx, archiveTimeout)
	defer cancel()
	ref, _, err := c.uploadArchive(ctx, archive.Backup, HistoryAll, header, fileKey, "backup")
	if err != nil {
		return err
	}
	s.Last, s.ID = c.now().UnixMilli(), ref.ID
	return c.saveBackupState(s)
}

// DisableBackup deletes the account's backup from the server and this
// device's recovery key.
func (c *Client) DisableBackup(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ready(); err != nil {
		return err
	}
	refs, err := c.archives(ctx)
	if err != nil {
		return err
	}
	for _, r := range refs {
		if r.Kind == "backup" {
			if err := c.api.do(ctx, "DELETE", "/api/archives/"+r.ID, nil, nil); err != nil && !IsCode(err, "not_found") {
				return err
			}
		}
	}
	return c.st.Delete(backupKey)
}

func (c *Client) archives(ctx context.Context) ([]archiveRef, error) {
	var ans struct {
		Archives []archiveRef `json:"archives"`
	}
	if err := c.api.do(ctx, "GET", "/api/archives", nil, &ans); err != nil {
		return nil, err
	}
	return ans.Archives, nil
}

// Restore brings the account back on this device from its backup: a
// device that signed in (Login) and holds no identity key yet. The
// recovery key is checked first (a typo is ErrRecoveryKey, before any
// request), then against the backup (ErrWrongRecoveryKey); the whole
// backup is read and checked before anything is written (a damaged one is
// ErrBackupCorrupt), and its identity key must be the account's. The
// device then holds the account's identity, the backed-up conversations,
// epochs and history, and keeps making backups under the same key;
// BackupStatus then reports when the restored backup was made.
func (c *Client) Restore(ctx context.Context, recoveryKey string) error {
	k, err := archive.ParseRecoveryKey(recoveryKey)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acct.Token == "" {
		return ErrNoAccount
	}
	if c.id != nil {
		return errors.New("this device already holds the account's identity key: restore on a device that only signed in")
	}
	refs, err := c.archives(ctx)
	if err != nil {
		return err
	}
	var ref *archiveRef
	for i := range refs {
		if refs[i].Kind == "backup" {
			ref = &refs[i]
		}
	}
	if ref == nil {
		return ErrNoBackup
	}
	var me struct {
		IdentityKey *protocol.IdentityKey `json:"identityKey"`
	}
	if err := c.api.do(ctx, "GET", "/api/me", nil, &me); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, archiveTimeout)
	defer cancel()
	open := func(ctx context.Context) (io.ReadCloser, error) {
		rc, _, err := c.fetchArchive(ctx, ref.ID)
		return rc, err
	}
	rc, err := open(ctx)
	if err != nil {
		return err
	}
	header := make([]byte, archive.BackupHeaderSize)
	_, err = io.ReadFull(rc, header)
	rc.Close()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	fileKey, err := k.OpenBackupHeader(c.acct.User, header)
	if errors.Is(err, archive.ErrBackupHeader) {
		return fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	if err != nil {
		return err
	}
	defer clear(fileKey)
	var id *secret.IdentityPrivateKey
	check := func(rec archive.Record) error {
		if rec.Key != identityRecord {
			return nil
		}
		var err error
		if id, err = secret.IdentityFromSeed(rec.Value); err != nil {
			return fmt.Errorf("%w: its identity key: %v", ErrBackupCorrupt, err)
		}
		return nil
	}
	owned := func() error {
		if id == nil {
			return fmt.Errorf("%w: it holds no identity key", ErrBackupCorrupt)
		}
		if me.IdentityKey == nil || !id.Public().Equal(*me.IdentityKey) {
			return errors.New("the backup's identity key is no longer the account's (the identity was reset since): it cannot be restored")
		}
		return nil
	}
	// The first pass checks everything and finds the identity before the
	// second writes anything; the second's first record checks that the
	// identity is the account's.
	hdr, err := c.importArchive(ctx, open, archive.BackupHeaderSize, fileKey, nil, archive.Backup, check, func(rec archive.Record) error {
		if err := owned(); err != nil {
			return err
		}
		return c.importRecord(rec)
	})
	if err != nil {
		if errors.Is(err, archive.ErrFormat) || isStreamErr(err) {
			return fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
		}
		return err
	}
	if err := owned(); err != nil {
		return err
	}
	if err := c.st.Put(identityRecord, id.Seed()); err != nil {
		return err
	}
	c.id = id
	if err := c.uploadBundle(ctx, false, c.batch); err != nil {
		return err
	}
	// Named in the account's device list at once, so that new epochs
	// include this device from now on (§12).
	if err := c.ensureDeviceList(ctx); err != nil {
		return err
	}
	// The backup's own date (authenticated: it is inside the encrypted
	// archive) is what BackupStatus reports as the last backup: the user's
	// check that the server served the newest one (protocol.md §14.4).
	made := min(hdr.Created, c.now().UnixMilli())
	if err := c.saveBackupState(&backupState{Recovery: k.Bytes(), ID: ref.ID, Last: made}); err != nil {
		return err
	}
	return c.catchUp(ctx)
}

// isStreamErr reports a ciphertext that does not decrypt whole.
func isStreamErr(err error) bool {
	return errors.Is(err, attach.ErrHeader) || errors.Is(err, attach.ErrTruncated) || errors.Is(err, attach.ErrChunk)
}
