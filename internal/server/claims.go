package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sandi.dev/protocol"
)

// Limits on pre-key routes (docs/operations.md, "Limits"). The claim route
// lets any device fetch any user's bundle, as it must to seal to it; what
// it must not let a device do is spend other users' allowance or another
// user's one-time keys:
//
//   - a claim names at most maxClaimUsers users, and each claim is charged
//     to the caller only: its device and its account (ClaimPerMinute);
//   - a one-time key of a target user is handed out only while the budget
//     of the pair (caller account, target) and the target's own budget
//     have a token (ClaimOneTimePerHour, TargetOneTimePerHour); otherwise
//     the claim still succeeds, with the bundle's signed pre-key only
//     (protocol.md §5.3), so that no one can block another's claims. The
//     budgets are charged once per distinct target that exists and has
//     devices, after every check, and refunded when no key was taken;
//   - uploads (bundles and one-time keys) are limited per device
//     (UploadPerMinute), and a device holds at most MaxOneTimeKeys
//     one-time keys.
const maxClaimUsers = 200

// keyLimitDefaults fills the zero values of the pre-key limits.
func (c *Config) keyLimitDefaults() {
	if c.MaxOneTimeKeys == 0 {
		c.MaxOneTimeKeys = 200
	}
	if c.UploadPerMinute == 0 {
		c.UploadPerMinute = 60
	}
	if c.ClaimOneTimePerHour == 0 {
		c.ClaimOneTimePerHour = 10
	}
	if c.TargetOneTimePerHour == 0 {
		c.TargetOneTimePerHour = 60
	}
	if c.MaxClaimBudgets <= 0 {
		c.MaxClaimBudgets = 100_000
	}
	if c.ClaimPerMinute < 0 { // every claim limit off
		c.ClaimOneTimePerHour, c.TargetOneTimePerHour = -1, -1
	}
}

// keyLimits are the pre-key route limits of a Server.
type keyLimits struct {
	upload  *limiter // per device
	budgets *oneTimeBudgets
}

// setupKeyLimits applies the pre-key limit defaults and builds the limits
// and their metrics.
func (s *Server) setupKeyLimits() {
	s.cfg.keyLimitDefaults()
	withheld := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sandi_claim_onetime_withheld_total",
		Help: "Claimed bundles served without a one-time pre-key because a budget was spent, by budget (caller, target, full).",
	}, []string{"budget"})
	s.metrics.reg.MustRegister(withheld)
	s.keyLimits = &keyLimits{
		upload: newLimiter(s.cfg.UploadPerMinute, s.cfg.MaxRateBuckets, s.cfg.Now, s.lm.buckets.WithLabelValues("upload")),
		budgets: &oneTimeBudgets{
			perPair: s.cfg.ClaimOneTimePerHour, perTarget: s.cfg.TargetOneTimePerHour, max: s.cfg.MaxClaimBudgets,
			now: s.cfg.Now, pairs: map[pairKey]*budget{}, targets: map[protocol.UserID]*budget{},
			withheld: withheld, log: s.log,
		},
	}
}

// chargeClaimCaller takes one claim from the caller's device and account
// buckets (a 429 when either is empty, taking nothing).
func (s *Server) chargeClaimCaller(c *call) error {
	dev, acct := "dev:"+c.device.ID.String(), "acct:"+c.user().String()
	if err := s.limits.claim.allow(dev); err != nil {
		return err
	}
	if err := s.limits.claim.allow(acct); err != nil {
		s.limits.claim.refund(dev)
		return err
	}
	return nil
}

// refund gives back a token allow took for key (a request refused for
// another reason after it was charged).
func (l *limiter) refund(key string) {
	if l.perMinute < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		b.tokens = min(float64(l.perMinute), b.tokens+1)
	}
}

// oneTimeBudgets are token buckets of claims with one-time keys per hour:
// one per (caller account, target user) pair and one per target user. A
// bucket idle for an hour is full again and forgotten; at most max of each
// kind are held. When the pair table is full (after forgetting the idle
// ones) a random pair is forgotten for each new one: a caller that fills
// it mostly forgets its own pairs, and what it regains stays within each
// target's budget. When the target table is full (as many users claimed
// within an hour) a new target gets no one-time key: that withholds
// one-time keys, never bundles.
type oneTimeBudgets struct {
	perPair, perTarget int // tokens per hour and burst; negative: unlimited
	max                int
	now                func() time.Time
	withheld           *prometheus.CounterVec
	log                *slog.Logger

	mu       sync.Mutex
	pairs    map[pairKey]*budget
	targets  map[protocol.UserID]*budget
	sweptAt  time.Time
	warnedAt time.Time
}

type pairKey struct {
	caller, target protocol.UserID
}

type budget struct {
	tokens float64
	at     time.Time
}

// take reports whether caller may be handed a one-time key of each device
// of target now, and if so charges both budgets.
func (o *oneTimeBudgets) take(caller, target protocol.UserID) bool {
	if o.perPair < 0 && o.perTarget < 0 {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if now.Sub(o.sweptAt) > time.Minute || len(o.pairs) >= o.max || len(o.targets) >= o.max {
		o.sweep(now)
	}
	p, _ := bucketOf(o.pairs, pairKey{caller, target}, o.perPair, o.max, true, now)
	t, full := bucketOf(o.targets, target, o.perTarget, o.max, false, now)
	if full {
		o.full(now)
		return false
	}
	if p != nil && p.tokens < 1 {
		o.withheld.WithLabelValues("caller").Inc()
		return false
	}
	if t != nil && t.tokens < 1 {
		o.withheld.WithLabelValues("target").Inc()
		return false
	}
	if p != nil {
		p.tokens--
	}
	if t != nil {
		t.tokens--
	}
	return true
}

// refund gives back what take charged (no key was taken after all).
func (o *oneTimeBudgets) refund(caller, target protocol.UserID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if b := o.pairs[pairKey{caller, target}]; b != nil {
		b.tokens = min(float64(o.perPair), b.tokens+1)
	}
	if b := o.targets[target]; b != nil {
		b.tokens = min(float64(o.perTarget), b.tokens+1)
	}
}

// bucket returns key's bucket in m, refilled to now, creating it if there
// is room or, with evict, after forgetting a random bucket; full reports
// that there was no room. An unlimited budget (rate < 0) has no bucket.
func bucketOf[K comparable](m map[K]*budget, key K, rate, max int, evict bool, now time.Time) (b *budget, full bool) {
	if rate < 0 {
		return nil, false
	}
	b = m[key]
	if b == nil {
		for k := range m { // random order: forget a random pair
			if len(m) < max || !evict {
				break
			}
			delete(m, k)
		}
		if len(m) >= max {
			return nil, true
		}
		b = &budget{tokens: float64(rate), at: now}
		m[key] = b
	}
	b.tokens = min(float64(rate), b.tokens+now.Sub(b.at).Hours()*float64(rate))
	b.at = now
	return b, false
}

// sweep forgets the buckets idle for an hour (full again), at most once a
// second.
func (o *oneTimeBudgets) sweep(now time.Time) {
	if now.Sub(o.sweptAt) < time.Second {
		return
	}
	for k, b := range o.pairs {
		if now.Sub(b.at) >= time.Hour {
			delete(o.pairs, k)
		}
	}
	for k, b := range o.targets {
		if now.Sub(b.at) >= time.Hour {
			delete(o.targets, k)
		}
	}
	o.sweptAt = now
}

// full counts a claim that found a table full and logs it, at most once
// a minute. Called with o.mu held.
func (o *oneTimeBudgets) full(now time.Time) {
	o.withheld.WithLabelValues("full").Inc()
	if now.Sub(o.warnedAt) >= time.Minute {
		o.warnedAt = now
		o.log.Warn("claim: one-time key budget table full; newly claimed users get bundles without one-time keys", "max", o.max)
	}
}

// notifyContacts wakes the connections of user's account and of the users
// sharing a conversation with it: the devices that got the events of a
// change of its devices or identity (store.PutBundle, PutDeviceList). If
// they cannot be read, every connection is woken (a wake-up carries no
// data; a missed one would delay delivery until the next poll).
func (s *Server) notifyContacts(ctx context.Context, user protocol.UserID) {
	users, err := s.store.Contacts(context.WithoutCancel(ctx), user)
	if err != nil {
		s.log.Warn("notify: contacts", "user", user, "err", err)
		s.hub.NotifyAll()
		return
	}
	s.hub.Notify(users...)
}

func tooManyUsers(n int) *Problem {
	return problem(http.StatusBadRequest, CodeTooManyUsers,
		fmt.Sprintf("a claim names 1 to %d users (this one %d); claim a larger conversation's members in several claims", maxClaimUsers, n), nil)
}

func tooManyPreKeys(max int, cause error) *Problem {
	return problem(http.StatusConflict, CodeTooManyPreKeys,
		fmt.Sprintf("a device holds at most %d one-time pre-keys; upload fewer, or after some are claimed", max), cause)
}
