package sqlstore

import (
	"context"
	"testing"

	"sandi.dev/protocol"
)

// testSchema checks what the schema itself refuses, whatever the code
// above it does: a session key without its initiator ephemeral key or
// ciphertext, a second session for one epoch, a reused client message id,
// a second event counter.
func testSchema(t *testing.T, s *Store) {
	ctx := context.Background()
	exec := func(q string, args ...any) error {
		_, err := s.w.ExecContext(ctx, s.d.rebind(q), args...)
		return err
	}
	must := func(q string, args ...any) {
		t.Helper()
		if err := exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	user, dev, conv := protocol.NewUserID(), protocol.NewDeviceID(), protocol.NewConversationID()
	must(`INSERT INTO users (id, username, password_hash, created_at) VALUES (?, 'u', 'h', 1)`, user[:])
	must(`INSERT INTO devices (id, user_id, name, created_at) VALUES (?, ?, 'd', 1)`, dev[:], user[:])
	must(`INSERT INTO conversations (id, created_at, chain_seq, chain_head, epoch, epoch_started_at) VALUES (?, 1, 0, ?, 1, 1)`, conv[:], make([]byte, 32))
	must(`INSERT INTO sessions (conversation_id, epoch, chain_seq, creator, encoded, created_at) VALUES (?, 1, 0, ?, ?, 1)`, conv[:], dev[:], []byte("dist"))

	key := `INSERT INTO session_keys (conversation_id, epoch, device_id, user_id, prekey_id, initiator_ephemeral_key, ciphertext) VALUES (?, 1, ?, ?, 0, ?, ?)`
	for _, bad := range []struct {
		name    string
		eph, ct []byte
	}{
		{"NULL initiator ephemeral key", nil, []byte("ct")},
		{"empty initiator ephemeral key", []byte{}, []byte("ct")},
		{"NULL ciphertext", []byte("enc"), nil},
		{"empty ciphertext", []byte("enc"), []byte{}},
	} {
		if err := exec(key, conv[:], dev[:], user[:], bad.eph, bad.ct); err == nil {
			t.Errorf("the schema accepted a session key with %s", bad.name)
		}
	}
	must(key, conv[:], dev[:], user[:], []byte("enc"), []byte("ct"))

	if err := exec(`INSERT INTO sessions (conversation_id, epoch, chain_seq, creator, encoded, created_at) VALUES (?, 1, 0, ?, ?, 2)`, conv[:], dev[:], []byte("other")); err == nil {
		t.Errorf("the schema accepted a second session for one epoch")
	}
	msg := `INSERT INTO messages (conversation_id, seq, sender_device, sender_user, client_id, epoch, envelope, created_at, event_id) VALUES (?, ?, ?, ?, 'c1', 1, ?, 1, 0)`
	must(msg, conv[:], 1, dev[:], user[:], []byte("e"))
	if err := exec(msg, conv[:], 2, dev[:], user[:], []byte("e")); err == nil {
		t.Errorf("the schema accepted a reused (sender device, client id)")
	}
	blobRow := `INSERT INTO blobs (id, conversation_id, user_id, device_id, size, parts, received, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 1)`
	for _, bad := range []struct {
		what        string
		size, parts int
	}{{"size 0", 0, 1}, {"no parts", 1, 0}} {
		if err := exec(blobRow, "0123456789abcdef0123456789abcdef", conv[:], user[:], dev[:], bad.size, bad.parts, []byte{0}); err == nil {
			t.Errorf("the schema accepted a blob with %s", bad.what)
		}
	}
	unknown := protocol.NewConversationID()
	if err := exec(blobRow, "0123456789abcdef0123456789abcdef", unknown[:], user[:], dev[:], 1, 1, []byte{0}); err == nil {
		t.Errorf("the schema accepted a blob of a conversation that does not exist")
	}
	if err := exec(`INSERT INTO event_counter (id, last_id) VALUES (2, 0)`); err == nil {
		t.Errorf("the schema accepted a second event counter")
	}
	if err := exec(`INSERT INTO session_keys (conversation_id, epoch, device_id, user_id, prekey_id, initiator_ephemeral_key, ciphertext) VALUES (?, 7, ?, ?, 0, ?, ?)`,
		conv[:], dev[:], user[:], []byte("enc"), []byte("ct")); err == nil {
		t.Errorf("the schema accepted a session key of an epoch without a session")
	}
}
