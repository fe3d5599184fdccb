package load

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sandi.dev/protocol"
	"sandi.dev/protocol/secret"
)

// client talks to one server over HTTP, as the real clients do.
type client struct {
	base string // http://127.0.0.1:PORT
	hc   *http.Client
	logf func(format string, args ...any)
}

func newClient(base string, logf func(string, ...any)) *client {
	tr := &http.Transport{
		// One kept-alive connection per concurrent sender: the default of 2
		// idle connections per host would make most requests dial anew.
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &client{base: base, hc: &http.Client{Transport: tr}, logf: logf}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// apiError is a problem document a request got.
type apiError struct {
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Detail     string `json:"detail"`
	RetryAfter int    `json:"retryAfter"`
}

func (a *apiError) Error() string { return fmt.Sprintf("%d %s: %s", a.Status, a.Code, a.Detail) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func base64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// do sends a JSON request (setup and catch-up, not the timed sends) and
// decodes a 2xx answer into out. A 429 is waited out (Retry-After) and
// retried while ctx lasts, so setup also works against a server with its
// default rate limits, only slowly.
func (c *client) do(ctx context.Context, token, method, path string, body, out any) error {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(data))
		if err != nil {
			return err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		rb, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode >= 300 {
			a := &apiError{}
			if json.Unmarshal(rb, a) != nil || a.Code == "" {
				return fmt.Errorf("%s %s: status %d: %.200q", method, path, resp.StatusCode, rb)
			}
			a.Status = resp.StatusCode
			if a.Status == http.StatusTooManyRequests {
				wait := time.Duration(max(a.RetryAfter, 1)) * time.Second
				c.logf("%s %s: rate limited; waiting %s (the server's rate limits apply to setup)", method, path, wait)
				select {
				case <-time.After(wait):
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return fmt.Errorf("%s %s: %w", method, path, a)
		}
		if out != nil && len(rb) > 0 {
			return json.Unmarshal(rb, out)
		}
		return nil
	}
}

// user is one account with one device.
type user struct {
	name   string
	id     protocol.UserID
	dev    protocol.DeviceID
	token  string
	auth   string // "Bearer " + token
	key    *secret.IdentityPrivateKey
	cursor int64
}

func (u *user) ref() protocol.DeviceRef { return protocol.DeviceRef{User: u.id, Device: u.dev} }

type authAnswer struct {
	UserID   protocol.UserID   `json:"userId"`
	DeviceID protocol.DeviceID `json:"deviceId"`
	Token    string            `json:"token"`
	Cursor   int64             `json:"cursor"`
}

// register creates an account and uploads its first bundle, made with real
// keys, with oneTime one-time pre-keys.
func (c *client) register(ctx context.Context, name string, oneTime int) (*user, error) {
	var a authAnswer
	if err := c.do(ctx, "", "POST", "/api/auth/register",
		map[string]string{"username": name, "password": "load-test password " + name, "deviceName": "sandi-load"}, &a); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	u := &user{name: name, id: a.UserID, dev: a.DeviceID, token: a.Token, auth: "Bearer " + a.Token, key: secret.NewIdentity(), cursor: a.Cursor}
	b, _, err := secret.NewBundle(u.key, u.id, u.dev, 1, min(oneTime, protocol.MaxOneTimePerUpload), time.Now().Unix())
	if err != nil {
		return nil, err
	}
	if err := c.do(ctx, u.token, "POST", "/api/keys/prekey-bundle", map[string]any{"bundle": b64(b.Marshal())}, nil); err != nil {
		return nil, fmt.Errorf("%s: upload bundle: %w", name, err)
	}
	return u, nil
}

type claimAnswer struct {
	Bundles []struct {
		Bundle string `json:"bundle"`
	} `json:"bundles"`
}

// sender is one sending device with its own conversation with the receiver.
type sender struct {
	idx  int
	u    *user
	to   int // the receiver, in runner.rcvs
	conv protocol.ConversationID
	path string // POST path of its messages

	mu    sync.Mutex // guards ep (an Epoch is not safe for concurrent use) and epoch
	ep    *secret.Epoch
	epoch uint64
	chain *protocol.Chain // the conversation's membership, for its next epochs

	pool    []string // pre-encrypted envelopes, base64url
	nextEnv atomic.Uint64
	nextID  atomic.Uint64
}

// createConversation makes a conversation of s (admin) and the receiver
// with its first epoch, as a client does: claim and verify the members'
// bundles, sign the genesis record, seal the epoch secret to every device.
func (c *client) createConversation(ctx context.Context, s *sender, rcv *user) error {
	now := time.Now().UnixMilli()
	rec := &protocol.Record{Op: protocol.OpCreate, Conversation: protocol.NewConversationID(), Time: now, Author: s.u.id,
		Members: []protocol.Member{
			{User: s.u.id, Identity: s.u.key.Public(), Role: protocol.RoleAdmin},
			{User: rcv.id, Identity: rcv.key.Public(), Role: protocol.RoleMember},
		}}
	secret.SignRecord(s.u.key, rec)
	chain, err := protocol.Genesis(rec)
	if err != nil {
		return err
	}
	bundles, err := c.claim(ctx, s.u, rcv)
	if err != nil {
		return err
	}
	dist, es, err := secret.NewDistribution(s.u.key, secret.EpochRequest{Chain: chain, Epoch: 1, Creator: s.u.ref(), Time: now, Bundles: bundles})
	if err != nil {
		return err
	}
	if err := c.do(ctx, s.u.token, "POST", "/api/conversations",
		map[string]string{"genesis": b64(rec.Marshal()), "session": b64(dist.Marshal())}, nil); err != nil {
		return fmt.Errorf("create conversation: %w", err)
	}
	s.conv, s.chain, s.epoch = chain.Conversation, chain, 1
	s.path = "/api/conversations/" + s.conv.String() + "/messages"
	s.ep, err = secret.NewEpoch(es, s.conv, 1, s.u.ref(), dist.Devices())
	return err
}

// encrypt makes the sender's next envelope, base64url-encoded.
func (s *sender) encrypt(pt []byte) (string, error) {
	s.mu.Lock()
	env, err := s.ep.Encrypt(s.u.key, pt)
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	return b64(env.Marshal()), nil
}

// envelope returns the envelope for the next send: the next one of the
// pre-encrypted pool (cycling), or a fresh one when inline is set.
func (s *sender) envelope(inline bool, pt []byte) (string, error) {
	if inline {
		return s.encrypt(pt)
	}
	i := s.nextEnv.Add(1) - 1
	return s.pool[i%uint64(len(s.pool))], nil
}

// clientID returns a new client message id, unique per device and, with the
// sender index in it, across the run.
func (s *sender) clientID() string {
	n := s.nextID.Add(1)
	b := make([]byte, 0, 24)
	b = append(b, 's')
	b = strconv.AppendInt(b, int64(s.idx), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, 1_000_000_000+n, 10)
	return string(b)
}

// sendResult is the outcome of one timed send.
type sendResult struct {
	status int    // HTTP status, 0 on a transport error
	code   string // problem code of a refused send
	err    error
}

func (r sendResult) ok() bool { return r.status >= 200 && r.status < 300 }

// errorKey names a failure in a report.
func (r sendResult) errorKey() string {
	if r.status == 0 {
		return "transport"
	}
	if r.code != "" {
		return strconv.Itoa(r.status) + " " + r.code
	}
	return strconv.Itoa(r.status)
}

// send posts one message: the request a client makes, with the body built
// directly (no JSON encoder on the timed path).
func (c *client) send(ctx context.Context, s *sender, cid, env string) sendResult {
	body := make([]byte, 0, len(cid)+len(env)+32)
	body = append(body, `{"clientId":"`...)
	body = append(body, cid...)
	body = append(body, `","envelope":"`...)
	body = append(body, env...)
	body = append(body, `"}`...)
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+s.path, bytes.NewReader(body))
	if err != nil {
		return sendResult{err: err}
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Authorization"] = []string{s.u.auth}
	resp, err := c.hc.Do(req)
	if err != nil {
		return sendResult{err: err}
	}
	defer resp.Body.Close()
	r := sendResult{status: resp.StatusCode}
	if r.ok() {
		io.Copy(io.Discard, resp.Body)
		return r
	}
	rb, _ := io.ReadAll(resp.Body)
	var a apiError
	if json.Unmarshal(rb, &a) == nil {
		r.code = a.Code
	}
	return r
}

// syncPage is the part of a GET /api/sync answer (and WebSocket frame) the
// tool reads.
type syncPage struct {
	Events []struct {
		ID      int64  `json:"id"`
		Kind    string `json:"kind"`
		Message *struct {
			ClientID string `json:"clientId"`
			Envelope string `json:"envelope"`
		} `json:"message"`
	} `json:"events"`
	Cursor int64 `json:"cursor"`
	More   bool  `json:"more"`
}

func (c *client) syncPage(ctx context.Context, u *user, since int64, limit int) (syncPage, error) {
	var p syncPage
	err := c.do(ctx, u.token, "GET", "/api/sync?since="+strconv.FormatInt(since, 10)+"&limit="+strconv.Itoa(limit), nil, &p)
	return p, err
}

// syncToEnd reads u's stream from its cursor to the end, untimed, and
// moves the cursor there.
func (c *client) syncToEnd(ctx context.Context, u *user, limit int) error {
	for {
		p, err := c.syncPage(ctx, u, u.cursor, limit)
		if err != nil {
			return err
		}
		u.cursor = p.Cursor
		if !p.More {
			return nil
		}
	}
}

// stored returns how many messages u's conversations hold (the sum of
// their last seq).
func (c *client) stored(ctx context.Context, u *user) (int64, error) {
	var a struct {
		Conversations []struct {
			LastSeq int64 `json:"lastSeq"`
		} `json:"conversations"`
	}
	if err := c.do(ctx, u.token, "GET", "/api/conversations", nil, &a); err != nil {
		return 0, err
	}
	var n int64
	for _, cv := range a.Conversations {
		n += cv.LastSeq
	}
	return n, nil
}
