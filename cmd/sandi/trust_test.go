package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/store"
	"sandi.dev/internal/store/sqlstore"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// TestCLITrust: bob verifies alice; alice resets her identity; bob's
// sending waits, says what to do, and works once he accepts the new key.
func TestCLITrust(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", t.TempDir())
	waitHealthy(t, srv, base)
	alice, alice2, bob := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "a2"), filepath.Join(t.TempDir(), "b")
	cliOK(t, base, alice, "pw of alice!\n", "register", "alice", "--password-stdin")
	cliOK(t, base, bob, "pw of bob!!\n", "register", "bob", "--password-stdin")
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, alice, "", "--json", "new", "bob")), &created); err != nil {
		t.Fatal(err)
	}
	conv := created.ID

	// A wrong number (typed on standard input) is refused and changes nothing.
	number := strings.TrimSpace(cliOK(t, base, alice, "", "safety-number", "bob"))
	wrong := strings.Replace(number, "1", "2", 1)
	if wrong == number {
		wrong = strings.Replace(number, "0", "3", 1)
	}
	if _, errs, code := cliRun(t, base, bob, wrong+"\n", "verify", "alice"); code != 1 || !strings.Contains(errs, "does not match") {
		t.Fatalf("verify with a wrong number: exit %d, %q", code, errs)
	}
	if out := cliOK(t, base, bob, "", "contacts"); !strings.Contains(out, "unverified") {
		t.Fatalf("contacts: %q", out)
	}
	cliOK(t, base, bob, "", "verify", "alice", "--number", strings.ReplaceAll(number, " ", ""))
	var ct client.Contact
	if err := json.Unmarshal([]byte(cliOK(t, base, bob, "", "--json", "contacts")), &ct); err != nil || !ct.Verified || ct.Username != "alice" {
		t.Fatalf("contacts: %+v %v", ct, err)
	}

	if _, errs, code := cliRun(t, base, bob, "", "reject", "alice"); code != 1 || !strings.Contains(errs, "no identity change") {
		t.Fatalf("reject with nothing pending: exit %d, %q", code, errs)
	}

	// Alice lost her device and resets her identity from a new one.
	cliOK(t, base, alice2, "pw of alice!\n", "login", "alice", "--password-stdin", "--reset")
	// She writes before bob has seen her new key: bob's device holds the
	// message (and says so) until he decides.
	cliOK(t, base, alice2, "", "send", conv, "it is me, new key")
	out, errs, code := cliRun(t, base, bob, "", "--json", "sync")
	// (stdout: no message, only the timeline line of the changed key)
	if code != 0 || strings.Contains(out, "new key") || !strings.Contains(out, `"kind":"identity"`) || !strings.Contains(errs, "is held until you accept or reject") || !strings.Contains(errs, "sandi accept alice") {
		t.Fatalf("sync with a held message: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	_, errs, code = cliRun(t, base, bob, "", "send", conv, "still you?")
	if code != 1 || !strings.Contains(errs, "sandi accept alice") {
		t.Fatalf("send to a changed verified contact: exit %d, %q", code, errs)
	}
	if out := cliOK(t, base, bob, "", "contacts"); !strings.Contains(out, "CHANGED") {
		t.Fatalf("contacts: %q", out)
	}
	// The alarm log, exactly as the SDK holds it.
	var kinds []string
	for line := range strings.Lines(cliOK(t, base, bob, "", "--json", "alarms", conv)) {
		dec := json.NewDecoder(bytes.NewReader([]byte(line)))
		dec.DisallowUnknownFields()
		var a client.Alarm
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("alarms printed %q: %v", line, err)
		}
		if back, _ := json.Marshal(a); string(back) != strings.TrimSpace(line) {
			t.Fatalf("alarms printed %q, not the alarm %s", line, back)
		}
		kinds = append(kinds, a.Kind)
	}
	if !slices.Contains(kinds, client.AlarmIdentityBlocked) {
		t.Fatalf("alarm kinds %q", kinds)
	}
	if out := cliOK(t, base, bob, "", "alarms"); !strings.Contains(out, "identity_blocked ["+conv[:8]+"]") {
		t.Fatalf("alarms: %q", out)
	}

	var acc struct {
		Accepted     bool
		Old          string `json:"oldSafetyNumber"`
		SafetyNumber string
	}
	lines := strings.Split(strings.TrimSpace(cliOK(t, base, bob, "", "--json", "accept", "alice")), "\n")
	if err := json.Unmarshal([]byte(lines[0]), &acc); err != nil || !acc.Accepted {
		t.Fatalf("accept: %+v %v", acc, err)
	}
	// Accepting shows what was held.
	var released syncLine
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &released) != nil || released.Sender != "alice" || released.Text != "it is me, new key" {
		t.Fatalf("accept printed %q", lines)
	}
	fresh := strings.ReplaceAll(strings.TrimSpace(cliOK(t, base, alice2, "", "safety-number", "bob")), " ", "")
	if acc.Old != strings.ReplaceAll(number, " ", "") || acc.SafetyNumber != fresh {
		t.Fatalf("accept printed %+v; old %s new %s", acc, number, fresh)
	}
	if _, errs, code := cliRun(t, base, bob, "", "accept", "alice"); code != 1 || !strings.Contains(errs, "no identity change") {
		t.Fatalf("accepting twice: exit %d, %q", code, errs)
	}
	cliOK(t, base, bob, "", "send", conv, "welcome back")
	if got := syncJSON(t, base, alice2); !slices.Equal(got, []string{"bob: welcome back"}) {
		t.Fatalf("alice synced %q", got)
	}
}

// forgeRekeyInDB is the malicious server: it appends to conv's chain, in
// its own database, a rekey of user to a key it holds (signed by that key
// alone, as any rekey the old key did not co-sign).
func forgeRekeyInDB(t *testing.T, db string, conv protocol.ConversationID, user protocol.UserID) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, db, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.Records(ctx, conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*protocol.Record
	for _, row := range rows {
		rec, err := protocol.ParseRecord(row.Encoded)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	chain, err := protocol.VerifyChain(recs)
	if err != nil {
		t.Fatal(err)
	}
	fake := secret.NewIdentity()
	rk := &protocol.Record{Op: protocol.OpRekey, Conversation: conv, Seq: chain.Seq + 1, Prev: chain.Head, Time: time.Now().UnixMilli(), Author: user,
		Members: []protocol.Member{{User: user, Identity: fake.Public(), Role: protocol.RoleMember}}}
	secret.SignRecord(fake, rk)
	next, err := chain.Apply(rk)
	if err != nil {
		t.Fatal(err)
	}
	var members []store.MemberRow
	for _, m := range next.Members() {
		members = append(members, store.MemberRow{User: m.User, Role: m.Role})
	}
	if err := st.ChangeMembership(ctx, store.MembershipChange{Conversation: conv, Record: store.RecordRow{Seq: rk.Seq, Encoded: rk.Marshal()},
		PrevSeq: chain.Seq, Head: next.Head, Members: members, Now: time.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
}

// TestCLIRekeyBack: the server forges a rekey of alice, the only admin of
// a conversation. Her sending stops and says what to do; 'sandi alarms'
// shows the critical alarm and suggests 'sandi rekey-back', which restores
// her key and role: she sends and adds a member again.
func TestCLIRekeyBack(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	data := t.TempDir()
	srv := startSandi(t, childEnv(), "serve", "--addr", addr, "--data", data)
	waitHealthy(t, srv, base)
	alice, bob, carol := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b"), filepath.Join(t.TempDir(), "c")
	cliOK(t, base, alice, "pw of alice!\n", "register", "alice", "--password-stdin")
	cliOK(t, base, bob, "pw of bob!!\n", "register", "bob", "--password-stdin")
	cliOK(t, base, carol, "pw of carol!\n", "register", "carol", "--password-stdin")
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(cliOK(t, base, alice, "", "--json", "new", "bob")), &created); err != nil {
		t.Fatal(err)
	}
	var who struct {
		User string `json:"user"`
	}
	if err := json.Unmarshal([]byte(cliOK(t, base, alice, "", "--json", "whoami")), &who); err != nil {
		t.Fatal(err)
	}
	conv, err := protocol.ParseConversationID(created.ID)
	if err != nil {
		t.Fatal(err)
	}
	user, err := protocol.ParseUserID(who.User)
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if out := cliOK(t, base, alice, "", "rekey-back"); !strings.Contains(out, "nothing to restore") {
		t.Fatalf("rekey-back with nothing forged: %q", out)
	}

	// The server's database is its own while it runs: stop it, forge,
	// start it again.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	forgeRekeyInDB(t, filepath.Join(data, "sandi.db"), conv, user)
	srv = startSandi(t, childEnv(), "serve", "--addr", addr, "--data", data)
	waitHealthy(t, srv, base)
	// Bob's device meets the forged rekey (here by trying to add carol,
	// which fetches the chain; he is no admin): his contact list says
	// alice's key came through a rekey nobody co-signed.
	if _, errs, code := cliRun(t, base, bob, "", "add", created.ID, "carol"); code != 1 {
		t.Fatalf("bob adds: exit %d, %q", code, errs)
	}
	if out := cliOK(t, base, bob, "", "contacts"); !strings.Contains(out, "REKEYED") || !strings.Contains(out, "did not co-sign, in 1 conversation") {
		t.Fatalf("bob's contacts after the forged rekey: %q", out)
	}
	_, errs, code := cliRun(t, base, alice, "", "send", created.ID, "still me")
	if code != 1 || !strings.Contains(errs, "sandi rekey-back") {
		t.Fatalf("send after a forged rekey: exit %d, %q", code, errs)
	}
	out := cliOK(t, base, alice, "", "alarms")
	if !strings.Contains(out, "CRITICAL  own_rekey ["+created.ID[:8]+"]") || !strings.Contains(out, "sandi rekey-back "+created.ID) {
		t.Fatalf("alarms: %q", out)
	}
	if _, errs, code := cliRun(t, base, alice, "", "rekey-back", "nosuchconversation"); code != 1 || errs == "" {
		t.Fatalf("rekey-back of an unknown conversation: exit %d, %q", code, errs)
	}
	var restored struct {
		Conversation string
		Restored     bool
	}
	if err := json.Unmarshal([]byte(cliOK(t, base, alice, "", "--json", "rekey-back", created.ID[:8])), &restored); err != nil || !restored.Restored || restored.Conversation != created.ID {
		t.Fatalf("rekey-back: %+v %v", restored, err)
	}
	cliOK(t, base, alice, "", "send", created.ID, "it was not me")
	cliOK(t, base, alice, "", "add", created.ID, "carol")
	cliOK(t, base, alice, "", "send", created.ID, "carol is in")
	if got := syncJSON(t, base, bob); !slices.Equal(got, []string{"alice: it was not me", "alice: carol is in"}) {
		t.Fatalf("bob synced %q", got)
	}
	if got := syncJSON(t, base, carol); !slices.Equal(got, []string{"alice: carol is in"}) {
		t.Fatalf("carol synced %q", got)
	}
	if out := cliOK(t, base, alice, "", "rekey-back"); !strings.Contains(out, "nothing to restore") {
		t.Fatalf("rekey-back twice: %q", out)
	}
	if out := cliOK(t, base, bob, "", "contacts"); strings.Contains(out, "REKEYED") {
		t.Fatalf("bob's contacts after the rekey back: %q", out)
	}
}
