package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"sandi.dev/protocol"
)

// Several nodes (sandi serve processes over one PostgreSQL database) form a
// cluster through a NATS server. NATS carries signals only, never content:
// "these users have new events", "these devices are revoked", "forget what
// you remember of tokens and members". The store stays the only truth: a
// woken socket reads its events from the store from its cursor, so a lost,
// late or repeated signal delays delivery at worst, and never loses or
// duplicates an event. The one exception to "signals only" is a typing
// notice (typing.go): encrypted by a member, relayed once to live
// connections and never stored, it has no other copy to lose.
//
// Lost signals are found and made up for:
//
//   - Every message a node publishes carries the node's id and a sequence
//     number, and each node publishes a beat every ClusterOptions.Beat
//     carrying the last number it used. A receiver that sees a number
//     jump (a message lost between the nodes, a publish that failed)
//     rechecks all its sockets: it forgets its remembered reads and has
//     every socket check its token and read its events.
//   - A node that loses its NATS connection rechecks all its sockets when
//     it is back (what was published meanwhile did not reach it).
//   - While sockets are connected, each node reads the store's newest
//     event id every ClusterOptions.Beat (one indexed read of one row). If
//     it moved while the node was cut off from NATS, or without any
//     wake-up reaching the node, the node wakes all its sockets. This is
//     what delivers while NATS is down: within one interval.

// ClusterOptions configure a node's membership of a cluster.
type ClusterOptions struct {
	// URL is the NATS server (nats://host:4222; several, comma-separated,
	// for a NATS cluster).
	URL string
	// Subject is the NATS subject the nodes share (default "sandi.cluster");
	// clusters sharing a NATS server need distinct subjects.
	Subject string
	// Beat is the interval of the beats and of the head poll (default 1 s).
	Beat time.Duration
	// Name names this node's NATS connection (shown by NATS monitoring).
	Name string
}

// Kinds of cluster messages.
const (
	cmWake         = 1 // users have new events
	cmRevoke       = 2 // devices of a user are revoked
	cmRevokeOthers = 3 // every device of a user but one is revoked
	cmForget       = 4 // members or tokens changed: forget remembered reads
	cmBeat         = 5 // the sender's last sequence number
	cmTyping       = 6 // a typing notice to relay to users (typing.go)
)

// clusterMsgVersion is the first byte of every cluster message.
const clusterMsgVersion = 1

// clusterMsg is one message between nodes:
//
//	version u8 (1) | kind u8 | node [8] | seq u64 big-endian | body
//
// body: wake: user ids (16 bytes each, at least one), then optionally the
// event mark (see wakeAtMark); revoke: the user id,
// then device ids (at least one); revoke-others: the user id, then the
// kept device id; forget and beat: empty; typing: see typingBody (the
// one message that carries content: a notice the server relays, never
// stores, and cannot read).
type clusterMsg struct {
	kind    byte
	node    [8]byte
	seq     uint64
	users   []protocol.UserID   // wake; revoke and revoke-others: one
	at      int64               // wake: the newest event id of the commit it announces (0: not said)
	devices []protocol.DeviceID // revoke; revoke-others: the kept device
	typing  []byte              // typing: the body
}

const clusterHeader = 2 + 8 + 8

// maxWakeUsers bounds the users of one wake message (256 KiB of ids, within
// NATS's default 1 MiB payload), the event mark included.
const maxWakeUsers = 16384

// wakeAtMark starts the event mark, the last 16 bytes of a wake message
// that names the newest event id of the commit it announces: the mark's
// 8 bytes, then the id (u64 big-endian, 1 to 2^63-1). A reader woken by
// it waits for the stream's head to settle up to that id only
// (sqlstore's SyncWoken). The id is a hint: a wrong one delays delivery
// at worst. A node of the previous release, which does not know the mark,
// takes it for one more account id and wakes nobody by it; account ids
// are random (protocol.NewUserID), so one is taken for a mark only by a
// 2^-64 chance, which costs that account's wake-up.
var wakeAtMark = [8]byte{'s', 'a', 'n', 'd', 'i', 0, 'a', 't'}

func (m *clusterMsg) encode() []byte {
	b := make([]byte, clusterHeader, clusterHeader+protocol.IDSize*(len(m.users)+len(m.devices)))
	b[0], b[1] = clusterMsgVersion, m.kind
	copy(b[2:10], m.node[:])
	binary.BigEndian.PutUint64(b[10:18], m.seq)
	for _, u := range m.users {
		b = append(b, u[:]...)
	}
	for _, d := range m.devices {
		b = append(b, d[:]...)
	}
	if m.kind == cmWake && m.at > 0 {
		b = append(b, wakeAtMark[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(m.at))
	}
	return append(b, m.typing...)
}

var errClusterMsg = errors.New("malformed cluster message")

// decodeClusterMsg parses a message published on the cluster subject (by
// anyone who may publish there: it is checked as untrusted input).
func decodeClusterMsg(b []byte) (clusterMsg, error) {
	var m clusterMsg
	if len(b) < clusterHeader || b[0] != clusterMsgVersion {
		return m, errClusterMsg
	}
	m.kind = b[1]
	copy(m.node[:], b[2:10])
	m.seq = binary.BigEndian.Uint64(b[10:18])
	body := b[clusterHeader:]
	if m.kind == cmTyping {
		if _, _, ok := parseTypingBody(body); !ok {
			return m, errClusterMsg
		}
		m.typing = body
		return m, nil
	}
	if len(body)%protocol.IDSize != 0 {
		return m, errClusterMsg
	}
	ids := len(body) / protocol.IDSize
	id := func(i int) (v [protocol.IDSize]byte) {
		copy(v[:], body[i*protocol.IDSize:])
		return v
	}
	switch m.kind {
	case cmWake:
		if ids == 0 || ids > maxWakeUsers {
			return m, errClusterMsg
		}
		if last := body[len(body)-protocol.IDSize:]; [8]byte(last[:8]) == wakeAtMark {
			at := binary.BigEndian.Uint64(last[8:])
			if ids == 1 || at == 0 || at > math.MaxInt64 {
				return m, errClusterMsg
			}
			m.at = int64(at)
			ids--
		}
		m.users = make([]protocol.UserID, ids)
		for i := range ids {
			m.users[i] = id(i)
		}
	case cmRevoke, cmRevokeOthers:
		if ids < 2 || m.kind == cmRevokeOthers && ids != 2 || ids > maxWakeUsers {
			return m, errClusterMsg
		}
		m.users = []protocol.UserID{id(0)}
		m.devices = make([]protocol.DeviceID, ids-1)
		for i := range ids - 1 {
			m.devices[i] = id(i + 1)
		}
	case cmForget, cmBeat:
		if ids != 0 {
			return m, errClusterMsg
		}
	default:
		return m, errClusterMsg
	}
	return m, nil
}

// cluster is a node's side of the cluster.
type cluster struct {
	s       *Server
	opts    ClusterOptions
	nc      *nats.Conn
	node    [8]byte
	pubMu   sync.Mutex // orders sequence numbers as published
	seq     uint64
	peersMu sync.Mutex
	peers   map[[8]byte]*clusterPeer

	woken  atomic.Bool // a wake-up (local or remote) since the last head poll
	outage atomic.Bool // the connection was down since the last head poll
	// head is the newest event id at the last poll, if headKnown; the
	// loop's own.
	head      int64
	headKnown bool

	stop chan struct{}
	done chan struct{}

	connected prometheus.Gauge
	gaps      prometheus.Counter
	catchUps  prometheus.Counter
	pubErrs   prometheus.Counter
}

type clusterPeer struct {
	seq  uint64
	seen time.Time
}

// forgetter is a store that remembers reads and can be told to forget
// them (sqlstore's PostgreSQL store).
type forgetter interface{ ForgetReads() }

// JoinCluster connects the server to the other nodes of its cluster
// through the NATS server at opts.URL. An unreachable NATS server is not
// an error: the node serves alone, delivering what other nodes store
// within one head poll, and joins when NATS answers. Call it before
// serving; Close leaves the cluster.
func (s *Server) JoinCluster(opts ClusterOptions) error {
	if s.cluster != nil {
		return errors.New("server: already in a cluster")
	}
	if opts.Subject == "" {
		opts.Subject = "sandi.cluster"
	}
	if opts.Beat <= 0 {
		opts.Beat = time.Second
	}
	c := &cluster{s: s, opts: opts, peers: map[[8]byte]*clusterPeer{}, stop: make(chan struct{}), done: make(chan struct{}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sandi_cluster_connected", Help: "1 while the node is connected to NATS."}),
		gaps:      prometheus.NewCounter(prometheus.CounterOpts{Name: "sandi_cluster_gaps_total", Help: "Cluster messages found lost (sequence gaps, reconnections): each rechecks every socket of the node."}),
		catchUps:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sandi_cluster_head_catchups_total", Help: "Head polls that found events no wake-up announced and woke every socket."}),
		pubErrs:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sandi_cluster_publish_errors_total", Help: "Cluster messages that could not be published."}),
	}
	if _, err := rand.Read(c.node[:]); err != nil {
		return err
	}
	s.metrics.reg.MustRegister(c.connected, c.gaps, c.catchUps, c.pubErrs)
	name := opts.Name
	if name == "" {
		name = "sandi"
	}
	nc, err := nats.Connect(opts.URL,
		nats.Name(name),
		nats.NoEcho(),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ConnectHandler(func(*nats.Conn) { c.connected.Set(1) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.outage.Store(true)
			c.connected.Set(0)
			s.log.Warn("cluster: NATS connection lost; delivering from other nodes by polling", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			c.connected.Set(1)
			s.log.Info("cluster: NATS connection back")
			c.recheck()
		}),
	)
	if err != nil {
		return fmt.Errorf("server: cluster: %w", err)
	}
	c.nc = nc
	if nc.IsConnected() {
		c.connected.Set(1)
	}
	if _, err := nc.Subscribe(opts.Subject, c.receive); err != nil {
		nc.Close()
		return fmt.Errorf("server: cluster: subscribe: %w", err)
	}
	s.cluster = c
	s.hub.Forward = c.wake
	go c.loop()
	return nil
}

// leave ends the node's membership (Close).
func (c *cluster) leave() {
	close(c.stop)
	<-c.done
	c.nc.Close()
}

// publish sends a message of kind with the next sequence number (or, for
// a beat, the last one). A failure is counted: the receivers find the
// gap at the next beat.
func (c *cluster) publish(m clusterMsg) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if m.kind != cmBeat {
		c.seq++
	}
	m.node, m.seq = c.node, c.seq
	if err := c.nc.Publish(c.opts.Subject, m.encode()); err != nil {
		c.pubErrs.Inc()
		c.s.log.Debug("cluster: publish", "err", err)
	}
}

// wake tells the other nodes that users have new events, at being the
// newest event id of the commit (0: not known) (Hub.Forward).
func (c *cluster) wake(users []protocol.UserID, at int64) {
	c.woken.Store(true)
	per := maxWakeUsers
	if at > 0 {
		per-- // the event mark takes an id's place
	}
	for len(users) > 0 {
		n := min(len(users), per)
		c.publish(clusterMsg{kind: cmWake, users: users[:n], at: at})
		users = users[n:]
	}
}

// receive handles a message from another node; NATS calls it on one
// goroutine, in the order the messages arrived.
func (c *cluster) receive(msg *nats.Msg) {
	m, err := decodeClusterMsg(msg.Data)
	if err != nil {
		c.s.log.Warn("cluster: ignoring a malformed message", "bytes", len(msg.Data))
		return
	}
	if m.node == c.node {
		return
	}
	if c.lost(m) {
		c.gaps.Inc()
		c.recheck()
	}
	switch m.kind {
	case cmWake:
		c.woken.Store(true)
		c.s.hub.Deliver(m.users, m.at)
	case cmRevoke:
		c.forget()
		c.s.hub.Revoke(m.users[0], m.devices...)
	case cmRevokeOthers:
		c.forget()
		c.s.hub.RevokeOthers(m.users[0], m.devices[0])
	case cmForget:
		c.forget()
	case cmTyping:
		users, notice, _ := parseTypingBody(m.typing)
		c.s.hub.Typing(users, notice)
	}
}

// lost records m's sequence number and reports whether messages of its
// sender were missed. A sender seen for the first time may have
// published before: that counts as a loss unless it is its first message.
func (c *cluster) lost(m clusterMsg) bool {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	p := c.peers[m.node]
	want := uint64(1) // the sequence number m must carry if nothing was lost
	if p != nil {
		want = p.seq + 1
	} else {
		p = &clusterPeer{}
		c.peers[m.node] = p
	}
	if m.kind == cmBeat {
		want-- // a beat repeats the last number
	}
	p.seen = time.Now()
	p.seq = max(p.seq, m.seq)
	return m.seq != want
}

// forget drops the store's remembered reads (tokens, members), so that a
// revocation or a membership change made on another node is seen at once.
func (c *cluster) forget() {
	if f, ok := c.s.store.(forgetter); ok {
		f.ForgetReads()
	}
}

// recheck is the answer to lost messages: forget remembered reads, and
// have every local socket check its token and read its events.
func (c *cluster) recheck() {
	c.forget()
	c.s.hub.kickAll(evPoll | evWake)
}

// loop beats and polls the head until leave.
func (c *cluster) loop() {
	defer close(c.done)
	t := time.NewTicker(c.opts.Beat)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.publish(clusterMsg{kind: cmBeat})
		c.pollHead()
		c.sweep()
	}
}

// pollHead reads the newest event id while sockets are connected, and
// wakes every local socket if it moved while the node was cut off from
// NATS or without any wake-up.
func (c *cluster) pollHead() {
	outage := c.outage.Swap(false) || !c.nc.IsConnected()
	woken := c.woken.Swap(false)
	if !c.s.hub.active() {
		c.headKnown = false // read afresh when sockets come
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Beat)
	head, err := c.s.store.LastEventID(ctx)
	cancel()
	if err != nil {
		c.outage.Store(outage) // try again at the next poll
		return
	}
	// Sockets that just came may have read the store before events that
	// a head read now includes: the first poll counts as a move.
	moved := !c.headKnown || head != c.head
	c.head, c.headKnown = head, true
	if moved && (outage || !woken) {
		c.catchUps.Inc()
		c.s.hub.kickAll(evWake)
	}
}

// sweep forgets peers not heard from for a while (stopped nodes).
func (c *cluster) sweep() {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	for id, p := range c.peers {
		if time.Since(p.seen) > 30*c.opts.Beat {
			delete(c.peers, id)
		}
	}
}

// ClusterConnected reports whether the node is in a cluster, and if so
// whether its NATS connection is up.
func (s *Server) ClusterConnected() (joined, connected bool) {
	if s.cluster == nil {
		return false, false
	}
	return true, s.cluster.nc.IsConnected()
}

// revokeLive ends the live connections of devices of user on every node.
func (s *Server) revokeLive(user protocol.UserID, devices ...protocol.DeviceID) {
	s.hub.Revoke(user, devices...)
	if c := s.cluster; c != nil && len(devices) > 0 {
		c.publish(clusterMsg{kind: cmRevoke, users: []protocol.UserID{user}, devices: devices})
	}
}

// revokeLiveOthers ends the live connections of every device of user but
// keep, on every node.
func (s *Server) revokeLiveOthers(user protocol.UserID, keep protocol.DeviceID) {
	s.hub.RevokeOthers(user, keep)
	if c := s.cluster; c != nil {
		c.publish(clusterMsg{kind: cmRevokeOthers, users: []protocol.UserID{user}, devices: []protocol.DeviceID{keep}})
	}
}

// forgetEverywhere tells the other nodes to forget their remembered reads
// after a change of members.
func (s *Server) forgetEverywhere() {
	if c := s.cluster; c != nil {
		c.publish(clusterMsg{kind: cmForget})
	}
}

// entryForgetter is a store that can forget one remembered answer.
type entryForgetter interface {
	ForgetToken(tokenHash []byte)
	ForgetMembers(protocol.ConversationID)
}

// recheckToken prepares a second look at a token whose remembered answer
// would refuse the request (a device without keys): in a cluster, the
// keys may have been uploaded through another node a moment ago, before
// its message to forget reached this one. It reports whether the answer
// was forgotten (then authenticate again).
func (s *Server) recheckToken(c *call) bool {
	f, ok := s.store.(entryForgetter)
	if s.cluster == nil || !ok {
		return false
	}
	f.ForgetToken(c.token)
	return true
}

// recheckMembers is recheckToken for a conversation whose remembered
// members do not include the caller.
func (s *Server) recheckMembers(conv protocol.ConversationID) bool {
	f, ok := s.store.(entryForgetter)
	if s.cluster == nil || !ok {
		return false
	}
	f.ForgetMembers(conv)
	return true
}

// kickAll gives ev to every local connection.
func (h *Hub) kickAll(ev liveEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ks := range h.subs {
		for k := range ks {
			k.kick(ev)
		}
	}
}

// active reports whether any connection is subscribed.
func (h *Hub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}
