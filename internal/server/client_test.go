package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"sandi.dev/internal/server"
	"sandi.dev/internal/store"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

func TestMain(m *testing.M) { testpg.Main(m) }

// env is one running server on loopback over a real database.
type env struct {
	t     *testing.T
	url   string
	st    store.Store
	srv   *server.Server
	clock *clock
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// forEachDB runs f against a server on SQLite (a file in a temp dir) and on
// PostgreSQL (a fresh database of the test cluster).
func forEachDB(t *testing.T, cfg server.Config, f func(t *testing.T, e *env)) {
	forEachDBURL(t, func(t *testing.T, url string) { f(t, newEnv(t, url, cfg)) })
}

// newEnv starts a server on the database at url, stopped when t ends.
func newEnv(t *testing.T, url string, cfg server.Config) *env {
	t.Helper()
	e, _ := openEnv(t, url, cfg)
	return e
}

// device is a test client device doing real cryptography.
type device struct {
	e        *env
	name     string
	user     protocol.UserID
	dev      protocol.DeviceID
	token    string
	id       *secret.IdentityPrivateKey
	prekeys  secret.PreKeyPrivates
	nextKey  uint32
	bundle   *protocol.Bundle
	epochs   map[protocol.ConversationID]map[uint64]*secret.Epoch
	chains   map[protocol.ConversationID]*protocol.Chain
	cursor   int64
	clientID int
}

// apiError is a problem document a request got.
type apiError struct {
	Status       int      `json:"status"`
	Code         string   `json:"code"`
	Detail       string   `json:"detail"`
	Missing      []string `json:"missing"`
	Extra        []string `json:"extra"`
	CurrentEpoch *uint64  `json:"currentEpoch"`
	Users        []string `json:"users"`
}

func (a *apiError) Error() string { return fmt.Sprintf("%d %s: %s", a.Status, a.Code, a.Detail) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// do sends a request with the device's token (token may be empty) and
// decodes a 2xx answer into out; a problem answer is returned as *apiError.
func (e *env) do(token, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var a apiError
		if err := json.Unmarshal(data, &a); err != nil || a.Code == "" {
			return fmt.Errorf("%s %s: status %d, body %q", method, path, resp.StatusCode, data)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			return fmt.Errorf("%s %s: problem with content type %q", method, path, ct)
		}
		a.Status = resp.StatusCode
		return &a
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (d *device) do(method, path string, body, out any) error {
	return d.e.do(d.token, method, path, body, out)
}

func (d *device) must(method, path string, body, out any) {
	d.e.t.Helper()
	if err := d.do(method, path, body, out); err != nil {
		d.e.t.Fatalf("%s: %s %s: %v", d.name, method, path, err)
	}
}

type authAnswer struct {
	UserID      protocol.UserID       `json:"userId"`
	DeviceID    protocol.DeviceID     `json:"deviceId"`
	Token       string                `json:"token"`
	IdentityKey *protocol.IdentityKey `json:"identityKey"`
	Cursor      int64                 `json:"cursor"`
}

// register creates an account and uploads its first bundle.
func (e *env) register(name string) *device {
	e.t.Helper()
	var a authAnswer
	if err := e.do("", "POST", "/api/auth/register", map[string]string{"username": name, "password": "correct horse " + name}, &a); err != nil {
		e.t.Fatalf("register %s: %v", name, err)
	}
	d := &device{e: e, name: name, user: a.UserID, dev: a.DeviceID, token: a.Token, id: secret.NewIdentity(), cursor: a.Cursor, nextKey: 1,
		epochs: map[protocol.ConversationID]map[uint64]*secret.Epoch{}, chains: map[protocol.ConversationID]*protocol.Chain{}}
	if err := d.uploadBundle(false); err != nil {
		e.t.Fatalf("%s: upload bundle: %v", name, err)
	}
	return d
}

// login adds a device to an account; with id set the device shares the
// account identity (as linking gives it), else it has none yet.
func (e *env) login(name string, id *secret.IdentityPrivateKey) *device {
	e.t.Helper()
	var a authAnswer
	if err := e.do("", "POST", "/api/auth/login", map[string]string{"username": name, "password": "correct horse " + name}, &a); err != nil {
		e.t.Fatalf("login %s: %v", name, err)
	}
	d := &device{e: e, name: name + "'", user: a.UserID, dev: a.DeviceID, token: a.Token, id: id, cursor: a.Cursor, nextKey: 1,
		epochs: map[protocol.ConversationID]map[uint64]*secret.Epoch{}, chains: map[protocol.ConversationID]*protocol.Chain{}}
	if id != nil {
		if err := d.uploadBundle(false); err != nil {
			e.t.Fatalf("%s: upload bundle: %v", name, err)
		}
	}
	return d
}

func (d *device) ref() protocol.DeviceRef { return protocol.DeviceRef{User: d.user, Device: d.dev} }

func (d *device) uploadBundle(reset bool) error {
	b, privs, err := secret.NewBundle(d.id, d.user, d.dev, d.nextKey, 5, d.e.clock.now.Unix())
	if err != nil {
		return err
	}
	d.nextKey += 7
	if d.prekeys == nil {
		d.prekeys = secret.PreKeyPrivates{}
	}
	for k, v := range privs {
		d.prekeys[k] = v
	}
	d.bundle = b
	return d.do("POST", "/api/keys/prekey-bundle", map[string]any{"bundle": b64(b.Marshal()), "reset": reset}, nil)
}

type claimAnswer struct {
	Bundles []struct {
		User    protocol.UserID   `json:"user"`
		Device  protocol.DeviceID `json:"device"`
		Bundle  string            `json:"bundle"`
		OneTime bool              `json:"oneTime"`
	} `json:"bundles"`
}

// claim claims and verifies bundles of every device of users.
func (d *device) claim(users ...protocol.UserID) ([]*protocol.Bundle, error) {
	var ca claimAnswer
	if err := d.do("POST", "/api/keys/claim", map[string]any{"users": users}, &ca); err != nil {
		return nil, err
	}
	var out []*protocol.Bundle
	for _, cb := range ca.Bundles {
		b, err := protocol.ParseBundle(unb64(d.e.t, cb.Bundle))
		if err != nil {
			return nil, err
		}
		if err := b.Verify(); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (d *device) member(role protocol.Role) protocol.Member {
	return protocol.Member{User: d.user, Identity: d.id.Public(), Role: role}
}

// create makes a conversation of d (admin) and others, with a session for
// every device of every member. skip drops devices from the session.
func (d *device) create(others []*device, skip ...protocol.DeviceID) (protocol.ConversationID, error) {
	rec := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Time: d.e.clock.now.UnixMilli(), Author: d.user}
	rec.Members = []protocol.Member{d.member(protocol.RoleAdmin)}
	users := []protocol.UserID{d.user}
	seen := map[protocol.UserID]bool{d.user: true}
	for _, o := range others {
		if !seen[o.user] {
			rec.Members = append(rec.Members, o.member(protocol.RoleMember))
			users = append(users, o.user)
			seen[o.user] = true
		}
	}
	secret.SignRecord(d.id, rec)
	chain, err := protocol.Genesis(rec)
	if err != nil {
		return protocol.ConversationID{}, err
	}
	dist, err := d.distribution(chain, 1, users, skip...)
	if err != nil {
		return protocol.ConversationID{}, err
	}
	err = d.do("POST", "/api/conversations", map[string]string{"genesis": b64(rec.Marshal()), "session": b64(dist.Marshal())}, nil)
	if err != nil {
		return protocol.ConversationID{}, err
	}
	d.chains[chain.Conversation] = chain
	return chain.Conversation, nil
}

func (d *device) distribution(chain *protocol.Chain, epoch uint64, users []protocol.UserID, skip ...protocol.DeviceID) (*protocol.Distribution, error) {
	bundles, err := d.claim(users...)
	if err != nil {
		return nil, err
	}
	var keep []*protocol.Bundle
	for _, b := range bundles {
		drop := false
		for _, s := range skip {
			drop = drop || b.Device == s
		}
		if !drop {
			keep = append(keep, b)
		}
	}
	dist, _, err := secret.NewDistribution(d.id, secret.EpochRequest{Chain: chain, Epoch: epoch, Creator: d.ref(), Time: d.e.clock.now.UnixMilli(), Bundles: keep})
	return dist, err
}

// fetchChain verifies the conversation's membership chain from the server.
func (d *device) fetchChain(conv protocol.ConversationID) (*protocol.Chain, error) {
	c, _, err := d.fetchRecords(conv)
	return c, err
}

// fetchRecords verifies the chain and also returns its records.
func (d *device) fetchRecords(conv protocol.ConversationID) (*protocol.Chain, []*protocol.Record, error) {
	var ra struct {
		Records []string `json:"records"`
	}
	if err := d.do("GET", "/api/conversations/"+conv.String()+"/records", nil, &ra); err != nil {
		return nil, nil, err
	}
	var recs []*protocol.Record
	for _, s := range ra.Records {
		r, err := protocol.ParseRecord(unb64(d.e.t, s))
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, r)
	}
	c, err := protocol.Update(d.chains[conv], recs)
	if err != nil {
		return nil, nil, err
	}
	d.chains[conv] = c
	return c, recs, nil
}

// change signs and posts a membership record.
func (d *device) change(conv protocol.ConversationID, op protocol.Op, members []protocol.Member, users []protocol.UserID) error {
	chain, err := d.fetchChain(conv)
	if err != nil {
		return err
	}
	rec := &protocol.Record{Op: op, Conversation: conv, Seq: chain.Seq + 1, Prev: chain.Head, Time: d.e.clock.now.UnixMilli(), Author: d.user, Members: members, Users: users}
	secret.SignRecord(d.id, rec)
	body := map[string]string{"record": b64(rec.Marshal())}
	switch op {
	case protocol.OpRemove:
		return d.do("DELETE", "/api/conversations/"+conv.String()+"/members/"+users[0].String(), body, nil)
	case protocol.OpLeave:
		return d.do("DELETE", "/api/conversations/"+conv.String()+"/members/"+d.user.String(), body, nil)
	}
	return d.do("POST", "/api/conversations/"+conv.String()+"/members", body, nil)
}

// rotate makes and posts the next epoch for the current members.
func (d *device) rotate(conv protocol.ConversationID, epoch uint64, skip ...protocol.DeviceID) error {
	chain, err := d.fetchChain(conv)
	if err != nil {
		return err
	}
	var users []protocol.UserID
	for _, m := range chain.Members() {
		users = append(users, m.User)
	}
	dist, err := d.distribution(chain, epoch, users, skip...)
	if err != nil {
		return err
	}
	return d.do("POST", "/api/conversations/"+conv.String()+"/sessions", map[string]string{"session": b64(dist.Marshal())}, nil)
}

type initialAnswer struct {
	Epoch                 uint64 `json:"epoch"`
	ChainSeq              uint64 `json:"chainSeq"`
	Distribution          string `json:"distribution"`
	PreKeyID              uint32 `json:"preKeyId"`
	InitiatorEphemeralKey string `json:"initiatorEphemeralKey"`
	Ciphertext            string `json:"ciphertext"`
}

// epoch returns this device's ratchet for an epoch: the one decrypt path
// (fetch initial-session, verify against the chain, unwrap).
func (d *device) epoch(conv protocol.ConversationID, n uint64) (*secret.Epoch, error) {
	if e := d.epochs[conv][n]; e != nil {
		return e, nil
	}
	var ia initialAnswer
	if err := d.do("GET", fmt.Sprintf("/api/conversations/%s/sessions/%d/initial-session", conv, n), nil, &ia); err != nil {
		return nil, err
	}
	dist, err := protocol.ParseDistribution(unb64(d.e.t, ia.Distribution))
	if err != nil {
		return nil, err
	}
	entry := dist.Entry(d.ref())
	if entry == nil || b64(entry.Enc[:]) != ia.InitiatorEphemeralKey || b64(entry.Ciphertext[:]) != ia.Ciphertext {
		return nil, fmt.Errorf("initial session entry does not match the distribution")
	}
	chain, recs, err := d.fetchRecords(conv)
	if err != nil {
		return nil, err
	}
	// The distribution may name an older chain state than the current one:
	// verify that prefix of the (already verified) chain.
	if dist.ChainSeq > chain.Seq {
		return nil, fmt.Errorf("epoch %d made for chain %d, chain at %d", n, dist.ChainSeq, chain.Seq)
	}
	at, err := protocol.VerifyChain(recs[:dist.ChainSeq+1])
	if err != nil {
		return nil, err
	}
	s, err := secret.OpenDistribution(secret.OpenRequest{Distribution: dist, Chain: at, Self: d.ref(), PreKey: func(id uint32) (*secret.KEMPrivateKey, error) {
		k := d.prekeys[id]
		if k == nil {
			return nil, fmt.Errorf("no pre-key %d", id)
		}
		return k, nil
	}})
	if err != nil {
		return nil, err
	}
	ep, err := secret.NewEpoch(s, conv, n, d.ref(), dist.Devices())
	if err != nil {
		return nil, err
	}
	if d.epochs[conv] == nil {
		d.epochs[conv] = map[uint64]*secret.Epoch{}
	}
	d.epochs[conv][n] = ep
	return ep, nil
}

type sendAnswer struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	CreatedAt int64  `json:"createdAt"`
	ExpiresAt int64  `json:"expiresAt"`
}

// send encrypts text in epoch n and posts it.
func (d *device) send(conv protocol.ConversationID, n uint64, text string) (sendAnswer, error) {
	ep, err := d.epoch(conv, n)
	if err != nil {
		return sendAnswer{}, err
	}
	env, err := ep.Encrypt(d.id, []byte(text))
	if err != nil {
		return sendAnswer{}, err
	}
	d.clientID++
	var sa sendAnswer
	err = d.do("POST", "/api/conversations/"+conv.String()+"/messages", map[string]string{
		"clientId": fmt.Sprintf("%s-%08d", d.dev, d.clientID), "envelope": b64(env.Marshal())}, &sa)
	return sa, err
}

type syncAnswer struct {
	Events []struct {
		ID           int64                    `json:"id"`
		Kind         string                   `json:"kind"`
		Conversation *protocol.ConversationID `json:"conversation"`
		Epoch        uint64                   `json:"epoch"`
		Message      *struct {
			Seq        uint64          `json:"seq"`
			SenderUser protocol.UserID `json:"senderUser"`
			Epoch      uint64          `json:"epoch"`
			Envelope   string          `json:"envelope"`
		} `json:"message"`
	} `json:"events"`
	Cursor int64 `json:"cursor"`
	More   bool  `json:"more"`
}

// received is one decrypted message.
type received struct {
	conv protocol.ConversationID
	seq  uint64
	text string
}

// syncAll reads every new event and decrypts the messages.
func (d *device) syncAll() ([]received, []string, error) {
	var out []received
	var kinds []string
	for {
		var sa syncAnswer
		if err := d.do("GET", fmt.Sprintf("/api/sync?since=%d", d.cursor), nil, &sa); err != nil {
			return nil, nil, err
		}
		for _, ev := range sa.Events {
			kinds = append(kinds, ev.Kind)
			if ev.Message == nil {
				continue
			}
			env, err := protocol.ParseEnvelope(unb64(d.e.t, ev.Message.Envelope))
			if err != nil {
				return nil, nil, err
			}
			if env.Sender == d.ref() {
				continue // our own message
			}
			ep, err := d.epoch(*ev.Conversation, env.Epoch)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: epoch %d: %w", d.name, env.Epoch, err)
			}
			sender := d.chains[*ev.Conversation]
			m, ok := sender.Member(env.Sender.User)
			if !ok {
				return nil, nil, fmt.Errorf("%s: sender is not a member", d.name)
			}
			pt, err := ep.Decrypt(env, m.Identity)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: decrypt: %w", d.name, err)
			}
			out = append(out, received{conv: *ev.Conversation, seq: ev.Message.Seq, text: string(pt)})
		}
		d.cursor = sa.Cursor
		if !sa.More {
			return out, kinds, nil
		}
	}
}
