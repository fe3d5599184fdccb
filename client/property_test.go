//go:build !js

package client_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"sandi.dev/client"
	"sandi.dev/internal/clustertest"
	"sandi.dev/internal/testpg"
	"sandi.dev/protocol"
)

// The property test: seeded random sequences of register, link a device,
// create a conversation, add, remove, leave, send, concurrent sends (which
// race to rotate), device offline and back (also across a removal), a live
// WebSocket dropped mid-way, a device removed by another device of its
// account, server restarts, contacts verified, and identity resets (with the
// new key accepted where it waits for the user). At the end every device
// syncs and:
//   - every accepted message is decrypted exactly once by every device that
//     was a member device when it was sent, and by no other device;
//   - no decrypt failure happened anywhere, no message is still held for an
//     identity key that waits for its user, and no device raised a
//     stale-epoch or equivocation alarm.
//
// SANDI_PROPERTY_SEQUENCES sets the number of sequences (default 6, the
// test script runs 200), SANDI_PROPERTY_SEED the first seed.
//
// TestPropertyCluster runs the same sequences against a cluster of three
// nodes over one PostgreSQL database and one NATS server, behind a proxy
// that sends each request (and each WebSocket) to a node at random; a
// restart restarts one node. SANDI_PROPERTY_CLUSTER_SEQUENCES sets the
// number of sequences (default 2).

type pDevice struct {
	c      *client.Client
	user   int
	name   string
	online bool
	got    map[msgKey]int // messages this device holds, counted
	// removed: another device of the account removed it; it receives
	// nothing sent after that.
	removed bool
	// recovery: the recovery key of the backups this device turned on
	// ("" while off).
	recovery string
}

type msgKey struct {
	conv protocol.ConversationID
	seq  uint64
}

type pConv struct {
	id      protocol.ConversationID
	admin   int          // the creator's user index (the only admin)
	members map[int]bool // user indexes
}

type sent struct {
	key     msgKey
	text    string
	devices map[*pDevice]bool // the member devices when it was accepted
}

type world struct {
	t       *testing.T
	url     string // the server, or the cluster's proxy
	restart func() // restarts the server, or one node of the cluster
	rng     *rand.Rand
	prefix  string
	users   []string
	devices []*pDevice
	convs   []*pConv
	sent    []sent
	ops     map[string]int
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestProperty(t *testing.T) {
	seqs := envInt("SANDI_PROPERTY_SEQUENCES", 6)
	first := envInt("SANDI_PROPERTY_SEED", 1)
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			n := startNode(t, dbs(t)[db](t), blobConfig(t))
			total := map[string]int{}
			for seed := first; seed < first+seqs; seed++ {
				w := &world{t: t, url: n.url(), restart: n.restart, rng: rand.New(rand.NewPCG(uint64(seed), 7)), prefix: fmt.Sprintf("s%d", seed), ops: map[string]int{}}
				w.run(t, seed)
				for k, v := range w.ops {
					total[k] += v
				}
			}
			ops := 0
			for _, v := range total {
				ops += v
			}
			t.Logf("%s: %d sequences, %d operations %v, decrypt failures 0", db, seqs, ops, total)
		})
	}
}

func TestPropertyCluster(t *testing.T) {
	seqs := envInt("SANDI_PROPERTY_CLUSTER_SEQUENCES", 2)
	first := envInt("SANDI_PROPERTY_SEED", 1)
	// The nodes share one blob store (a directory here; a bucket in a
	// real cluster), as they share the database.
	cfg := clustertest.TestConfig()
	cfg.Blobs = blobConfig(t).Blobs
	cl := clustertest.Start(t, clustertest.Options{Nodes: 3, DB: testpg.URL(t), Config: cfg, Seed: uint64(first)})
	ops := 0
	for seed := first; seed < first+seqs; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		restart := func() { cl.Nodes[rng.IntN(len(cl.Nodes))].Restart() }
		w := &world{t: t, url: cl.ProxyURL, restart: restart, rng: rng, prefix: fmt.Sprintf("c%d", seed), ops: map[string]int{}}
		w.run(t, seed)
		for _, v := range w.ops {
			ops += v
		}
	}
	t.Logf("cluster of %d nodes: %d sequences, %d operations, decrypt failures 0", len(cl.Nodes), seqs, ops)
}

func (w *world) fail(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("sequence %s: "+format, append([]any{w.prefix}, args...)...)
}

func (w *world) newDevice(user int) *pDevice {
	st := client.NewMemStorage()
	c, err := client.Open(client.Options{Server: w.url, Storage: st, OneTimeBatch: 5,
		HTTPClient: &http.Client{Timeout: 2 * time.Minute}})
	if err != nil {
		w.fail("open: %v", err)
	}
	d := &pDevice{c: c, user: user, online: true, got: map[msgKey]int{}, name: fmt.Sprintf("%s#%d", w.users[user], len(w.devices))}
	return d
}

func (w *world) register() {
	ctx := context.Background()
	name := fmt.Sprintf("%su%d", w.prefix, len(w.users))
	w.users = append(w.users, name)
	d := w.newDevice(len(w.users) - 1)
	if err := d.c.Register(ctx, name, "password "+name); err != nil {
		w.fail("register %s: %v", name, err)
	}
	w.devices = append(w.devices, d)
	w.ops["register"]++
}

func (w *world) devicesOf(user int) []*pDevice {
	var out []*pDevice
	for _, d := range w.devices {
		if d.user == user {
			out = append(out, d)
		}
	}
	return out
}

func (w *world) link(user int) {
	ctx := context.Background()
	var approver *pDevice
	for _, d := range w.devicesOf(user) {
		if d.online {
			approver = d
		}
	}
	if approver == nil {
		return
	}
	d := w.newDevice(user)
	if err := d.c.Login(ctx, w.users[user], "password "+w.users[user]); err != nil {
		w.fail("login: %v", err)
	}
	code, err := d.c.StartLink(ctx)
	if err != nil {
		w.fail("start link: %v", err)
	}
	if _, err := approver.c.ApproveLink(ctx, code); err != nil {
		w.fail("approve link: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := d.c.WaitLink(wctx, 10*time.Millisecond); err != nil {
		w.fail("wait link: %v", err)
	}
	w.devices = append(w.devices, d)
	w.ops["link"]++
}

// onlineMemberDevice picks an online device of a member of cv (nil if none).
func (w *world) onlineMemberDevice(cv *pConv) *pDevice {
	var cands []*pDevice
	for _, d := range w.devices {
		if d.online && cv.members[d.user] {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[w.rng.IntN(len(cands))]
}

func (w *world) create() {
	ctx := context.Background()
	var cands []*pDevice
	for _, d := range w.devices {
		if d.online {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		return // every device is offline: nobody can create one
	}
	d := cands[w.rng.IntN(len(cands))]
	cv := &pConv{admin: d.user, members: map[int]bool{d.user: true}}
	var names []string
	for u := range w.users {
		if u != d.user && w.rng.IntN(2) == 0 {
			cv.members[u] = true
			names = append(names, w.users[u])
		}
	}
	if len(names) == 0 {
		u := (d.user + 1) % len(w.users)
		cv.members[u] = true
		names = append(names, w.users[u])
	}
	id, err := d.c.CreateConversation(ctx, "", names...)
	if err != nil {
		w.fail("%s creates: %v", d.name, err)
	}
	cv.id = id
	w.convs = append(w.convs, cv)
	w.ops["create"]++
}

func (w *world) adminDevice(cv *pConv) *pDevice {
	for _, d := range w.devicesOf(cv.admin) {
		if d.online {
			return d
		}
	}
	return nil
}

func (w *world) add(cv *pConv) {
	var out []int
	for u := range w.users {
		if !cv.members[u] {
			out = append(out, u)
		}
	}
	admin := w.adminDevice(cv)
	if len(out) == 0 || admin == nil || !cv.members[cv.admin] {
		return
	}
	u := out[w.rng.IntN(len(out))]
	if err := admin.c.AddMembers(context.Background(), cv.id, w.users[u]); err != nil {
		w.fail("%s adds %s: %v", admin.name, w.users[u], err)
	}
	cv.members[u] = true
	w.ops["add"]++
}

func (w *world) remove(cv *pConv) {
	var in []int
	for u := range cv.members {
		if u != cv.admin {
			in = append(in, u)
		}
	}
	admin := w.adminDevice(cv)
	if len(in) == 0 || admin == nil || !cv.members[cv.admin] {
		return
	}
	slices.Sort(in)
	u := in[w.rng.IntN(len(in))]
	if err := admin.c.RemoveMembers(context.Background(), cv.id, w.users[u]); err != nil {
		w.fail("%s removes %s: %v", admin.name, w.users[u], err)
	}
	delete(cv.members, u)
	w.ops["remove"]++
}

func (w *world) leave(cv *pConv) {
	var in []int
	for u := range cv.members {
		if u != cv.admin {
			in = append(in, u)
		}
	}
	if len(in) == 0 {
		return
	}
	slices.Sort(in)
	u := in[w.rng.IntN(len(in))]
	var d *pDevice
	for _, x := range w.devicesOf(u) {
		if x.online {
			d = x
		}
	}
	if d == nil {
		return
	}
	if err := d.c.Leave(context.Background(), cv.id); err != nil {
		w.fail("%s leaves: %v", d.name, err)
	}
	delete(cv.members, u)
	w.ops["leave"]++
}

// expected returns the member devices of cv now.
func (w *world) expected(cv *pConv) map[*pDevice]bool {
	out := map[*pDevice]bool{}
	for _, d := range w.devices {
		if cv.members[d.user] && !d.removed {
			out[d] = true
		}
	}
	return out
}

// removeDevice has an online device of some account remove another device
// of the same account (online or not).
func (w *world) removeDevice() {
	u := w.rng.IntN(len(w.users))
	var by, gone *pDevice
	for _, d := range w.devicesOf(u) {
		switch {
		case d.removed:
		case by == nil && d.online:
			by = d
		case gone == nil:
			gone = d
		}
	}
	if by == nil || gone == nil {
		return
	}
	if _, err := by.c.RemoveDevice(context.Background(), gone.c.DeviceID().String()[:8]); err != nil {
		w.fail("%s removes %s: %v", by.name, gone.name, err)
	}
	gone.removed, gone.online = true, false
	w.ops["remove device"]++
}

func (w *world) send(cv *pConv, d *pDevice) {
	text := fmt.Sprintf("%s m%d from %s", w.prefix, len(w.sent), d.name)
	m, err := d.c.Send(context.Background(), cv.id, text)
	if err != nil {
		w.fail("%s sends: %v", d.name, err)
	}
	k := msgKey{cv.id, m.Seq}
	d.got[k]++
	w.sent = append(w.sent, sent{key: k, text: text, devices: w.expected(cv)})
	w.ops["send"]++
}

// concurrent has several member devices send at once; after a membership
// or device change they race to create the next epoch.
func (w *world) concurrent(cv *pConv) {
	var ds []*pDevice
	for _, d := range w.devices {
		if d.online && cv.members[d.user] && len(ds) < 3 {
			ds = append(ds, d)
		}
	}
	exp := w.expected(cv)
	base := len(w.sent) // read before the senders append to w.sent
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() {
			text := fmt.Sprintf("%s c%d.%d from %s", w.prefix, base, i, d.name)
			m, err := d.c.Send(context.Background(), cv.id, text)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				w.t.Errorf("sequence %s: %s sends concurrently: %v", w.prefix, d.name, err)
				return
			}
			k := msgKey{cv.id, m.Seq}
			d.got[k]++
			w.sent = append(w.sent, sent{key: k, text: text, devices: exp})
		})
	}
	wg.Wait()
	if w.t.Failed() {
		w.t.FailNow()
	}
	w.ops["concurrent"]++
}

// offlineRemoval: a member device goes offline; meanwhile a message is
// sent and a member removed. The device comes back and sends before it
// syncs, so it verifies the removal (and uses the epoch made for it)
// before it reads the message sent in the epoch before; then members race
// to send.
func (w *world) offlineRemoval(cv *pConv) {
	d := w.onlineMemberDevice(cv)
	if d == nil {
		return
	}
	d.online = false
	if o := w.onlineMemberDevice(cv); o != nil {
		w.send(cv, o)
	}
	w.remove(cv)
	d.online = true
	if cv.members[d.user] {
		w.send(cv, d)
	}
	w.concurrent(cv)
	w.ops["offline removal"]++
}

func (w *world) syncDevice(d *pDevice) {
	res, err := d.c.Sync(context.Background())
	if err != nil {
		w.fail("%s syncs: %v", d.name, err)
	}
	w.took(d, res.Messages, res.Failures)
}

func (w *world) took(d *pDevice, ms []client.Message, fails []*client.DecryptError) {
	for _, f := range fails {
		w.fail("%s: decrypt failure: %v", d.name, f)
	}
	for _, m := range ms {
		d.got[msgKey{m.Conversation, m.Seq}]++
	}
}

// verify has a device compare safety numbers with a device of another
// user and mark that user verified.
func (w *world) verify() {
	w.verifyPair(w.devices[w.rng.IntN(len(w.devices))], w.rng.IntN(len(w.users)))
}

// verifyPair has device d verify user v.
func (w *world) verifyPair(d *pDevice, v int) {
	ctx := context.Background()
	if v == d.user || d.removed {
		return
	}
	i := slices.IndexFunc(w.devicesOf(v), func(o *pDevice) bool { return !o.removed })
	if i < 0 {
		return
	}
	other := w.devicesOf(v)[i]
	n, _, err := other.c.SafetyNumber(ctx, w.users[d.user])
	if err != nil {
		w.fail("%s: safety number: %v", other.name, err)
	}
	if err := d.c.MarkVerified(ctx, w.users[v], []byte(n)); err != nil {
		w.fail("%s verifies %s: %v", d.name, w.users[v], err)
	}
	w.ops["verify"]++
}

// reset has a user with one device lose it and reset the identity from a
// new device (the old one is signed out and leaves the world); every other
// device syncs, and where the new key waits for its user (a verified
// contact, or a key met outside a shared conversation) accepts it after
// comparing safety numbers.
func (w *world) reset() {
	ctx := context.Background()
	var single []int
	for u := range w.users {
		if ds := w.devicesOf(u); len(ds) == 1 && ds[0].online {
			single = append(single, u)
		}
	}
	if len(single) == 0 {
		return
	}
	u := single[w.rng.IntN(len(single))]
	if w.rng.IntN(2) == 0 {
		w.verifyPair(w.devices[w.rng.IntN(len(w.devices))], u) // so that the new key waits more often
	}
	ds := w.devicesOf(u)
	d := w.newDevice(u)
	if err := d.c.Login(ctx, w.users[u], "password "+w.users[u]); err != nil {
		w.fail("login: %v", err)
	}
	if err := d.c.ResetIdentity(ctx); err != nil {
		w.fail("%s resets: %v", d.name, err)
	}
	w.devices[slices.Index(w.devices, ds[0])] = d
	for _, cv := range w.convs {
		if cv.admin == u {
			cv.admin = -1 // a rekey makes the admin a plain member (protocol.md §6.2)
		}
	}
	// Sometimes the new device writes before the others have seen the new
	// key: where it waits for their user, the message is held until the
	// key is accepted, then shown (and reported by the next sync).
	for _, cv := range w.convs {
		if cv.members[u] && w.rng.IntN(2) == 0 {
			w.send(cv, d)
			w.ops["send before accept"]++
			break
		}
	}
	for _, d := range w.devices {
		if d.user == u || d.removed {
			continue
		}
		w.syncDevice(d)
		if _, err := d.c.FindUser(ctx, w.users[u]); err != nil {
			w.fail("%s looks up %s: %v", d.name, w.users[u], err)
		}
		if ct, err := d.c.Contact(ctx, w.users[u]); err != nil {
			w.fail("%s: contact %s: %v", d.name, w.users[u], err)
		} else if ct.Pending != nil {
			if _, _, err := d.c.AcceptIdentity(w.users[u]); err != nil {
				w.fail("%s accepts %s: %v", d.name, w.users[u], err)
			}
			w.ops["accept"]++
			w.syncDevice(d)
		}
	}
	w.ops["reset"]++
}

// listen runs a device's live WebSocket briefly and drops it.
func (w *world) listen(d *pDevice) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(20+w.rng.IntN(60))*time.Millisecond)
	defer cancel()
	var ms []client.Message
	var fails []*client.DecryptError
	d.c.Listen(ctx, func(m client.Message) { ms = append(ms, m) }, func(f *client.DecryptError) { fails = append(fails, f) })
	w.took(d, ms, fails)
	w.ops["listen"]++
}

func (w *world) run(t *testing.T, seed int) {
	for range 4 {
		w.register()
	}
	w.link(0)
	w.link(1)
	w.create()
	steps := 20 + w.rng.IntN(15)
	for range steps {
		cv := w.convs[w.rng.IntN(len(w.convs))]
		switch r := w.rng.IntN(100); {
		case r < 30:
			if d := w.onlineMemberDevice(cv); d != nil {
				w.send(cv, d)
			}
		case r < 38:
			w.concurrent(cv)
		case r < 45:
			w.add(cv)
		case r < 51:
			w.remove(cv)
		case r < 54:
			w.leave(cv)
		case r < 58:
			if len(w.convs) < 4 {
				w.create()
			}
		case r < 61:
			if u := w.rng.IntN(len(w.users)); len(w.devicesOf(u)) < 3 {
				if w.rng.IntN(2) == 0 {
					w.link(u)
				} else {
					w.linkTransfer(u)
				}
			}
		case r < 69:
			d := w.devices[w.rng.IntN(len(w.devices))]
			d.online = !d.online && !d.removed
			w.ops["offline/online"]++
		case r < 74:
			if d := w.devices[w.rng.IntN(len(w.devices))]; d.online {
				w.listen(d)
			}
		case r < 76:
			w.restart()
			w.ops["restart"]++
		case r < 78:
			w.removeDevice()
		case r < 80:
			w.verify()
		case r < 81:
			w.reset()
		case r < 82:
			w.restoreBackup(w.rng.IntN(len(w.users)))
		case r < 85:
			w.offlineRemoval(cv)
		default:
			if d := w.devices[w.rng.IntN(len(w.devices))]; d.online {
				w.syncDevice(d)
				w.ops["sync"]++
			}
		}
	}
	// Everyone comes back and catches up.
	for _, d := range w.devices {
		if d.removed {
			if _, err := d.c.Sync(context.Background()); !client.IsCode(err, "unauthenticated") {
				w.fail("%s was removed, yet its sync answered %v", d.name, err)
			}
			continue
		}
		d.online = true
		w.syncDevice(d)
	}
	for _, s := range w.sent {
		for _, d := range w.devices {
			n := d.got[s.key]
			switch {
			case s.devices[d] && n != 1 && !(d.removed && n == 0): // a removed device may not have synced in time
				w.fail("%q (seq %d) held %d times by %s, a member device when it was sent", s.text, s.key.seq, n, d.name)
			case !s.devices[d] && n != 0:
				w.fail("%q (seq %d) decrypted by %s, not a member device when it was sent", s.text, s.key.seq, d.name)
			}
		}
	}
	for _, d := range w.devices {
		if st := d.c.Stats(); len(st.DecryptFailed) != 0 {
			w.fail("%s counted decrypt failures %v", d.name, st.DecryptFailed)
		}
		// A message held for a key never accepted is never shown: a
		// failure as much as one that did not decrypt.
		if hm, err := d.c.HeldMessages(); err != nil || len(hm) != 0 {
			w.fail("%s still holds messages %+v (%v)", d.name, hm, err)
		}
		w.ops["held, then shown"] += d.c.Stats().Held
		// The server is honest here: the epoch rules raise nothing.
		as, err := d.c.Alarms(protocol.ConversationID{})
		if err != nil {
			w.fail("%s: alarms: %v", d.name, err)
		}
		for _, a := range as {
			if a.Kind == client.AlarmStaleEpoch || a.Kind == client.AlarmEquivocation {
				w.fail("%s raised an alarm against an honest server: %+v", d.name, a)
			}
		}
	}
}
