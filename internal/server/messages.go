package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"sandi.dev/internal/store"
	"sandi.dev/protocol"
)

// maxSendBody caps a send request: a maximal envelope in base64 plus JSON.
const maxSendBody = protocol.MaxEnvelopeSize*4/3 + 1024

type sendRequest struct {
	ClientID string `json:"clientId"`
	Envelope B64    `json:"envelope"`
	// Blobs are the attachment blobs the message shares (blobs.go).
	Blobs []string `json:"blobs,omitempty"`
	// Timer is the disappearing-message timer, in seconds, that the
	// sender applied (0: off): the server deletes the message that long
	// after it stored it (disappear.go, protocol.md §13.10).
	Timer uint32 `json:"timer,omitempty"`
}

type sendResponse struct {
	Seq       uint64 `json:"seq"`
	Epoch     uint64 `json:"epoch"`
	CreatedAt int64  `json:"createdAt"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// ExpiresAt is when the server deletes the message (Unix ms), for a
	// message sent with a timer.
	ExpiresAt int64 `json:"expiresAt,omitempty"`
}

func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request, c *call) error {
	var req sendRequest
	if err := decode(r, &req, maxSendBody); err != nil {
		return err
	}
	// Uploads yield meanwhile (yieldReader): from here on, not while the
	// body comes, which a client may hold back for the read timeout.
	s.sending.Add(1)
	defer s.sending.Add(-1)
	s.uploadPace.sent()
	if len(req.ClientID) < 8 || len(req.ClientID) > 64 {
		return badRequest("clientId has 8 to 64 characters", nil)
	}
	if len(req.Envelope) > protocol.MaxEnvelopeSize {
		return problem(http.StatusRequestEntityTooLarge, CodeTooLarge, "message too large", nil)
	}
	if req.Blobs != nil {
		if err := blobRefs(req.Blobs); err != nil {
			return err
		}
	}
	env, err := protocol.ParseEnvelope(req.Envelope)
	if err != nil {
		return badRequest("envelope: "+err.Error(), err)
	}
	if env.Conversation != c.conv || env.Sender != c.ref() {
		return problem(http.StatusForbidden, CodeForbidden, "an envelope names its conversation and its sending device", nil)
	}
	id, err := s.identityOf(r.Context(), c.device)
	if err != nil {
		return err
	}
	if id == nil {
		return problem(http.StatusConflict, CodeConflict, "upload a pre-key bundle first", nil)
	}
	// The signature is verified while the store writes the message: the
	// store commits it only once the check has passed (store.Send.Check),
	// and a message whose signature fails is answered as before, having
	// stored nothing.
	verified := make(chan error, 1)
	go func() { verified <- env.Verify(*id) }()
	check := sync.OnceValue(func() error { return <-verified })
	now := s.now() // the stored expiry is the answered one: created_at + timer
	res, err := s.store.SendOne(r.Context(), store.Send{
		Conversation: c.conv, Sender: c.device.ID, SenderUser: c.user(), ClientID: req.ClientID,
		Epoch: env.Epoch, Envelope: req.Envelope, Now: now,
		RotateAfterMessages: s.cfg.RotateAfterMessages, RotateAfterMillis: s.cfg.RotateAfterAge.Milliseconds(),
		Blobs: req.Blobs, ExpiresAt: expiresAt(now, req.Timer), Check: check,
	})
	if err := check(); err != nil {
		return problem(http.StatusBadRequest, CodeBadSignature, err.Error(), err)
	}
	if err != nil {
		if errors.Is(err, store.ErrBadBlob) {
			err = problem(http.StatusBadRequest, CodeBadBlob, "each blob must be complete, of this conversation and uploaded by this account", err)
		}
		err = storeErr(err)
		var p *Problem
		if errors.As(err, &p) {
			s.metrics.sendsRefused.WithLabelValues(p.Code).Inc()
		}
		return err
	}
	if !res.Duplicate {
		s.metrics.messages.Inc()
		// Wake the members read by the membership check, a moment ago,
		// instead of reading them again. They are the members the message
		// was stored for unless a membership change and the next epoch
		// both committed while this request ran (a change alone makes the
		// store refuse the send): then an added member is woken by the next
		// event or the poll, as when the change commits just after a send.
		s.notifyConversation(r.Context(), c.conv, c.members, res.EventID)
	}
	status := http.StatusCreated
	if res.Duplicate {
		status = http.StatusOK
	}
	s.writeJSON(w, status, sendResponse{Seq: res.Seq, Epoch: env.Epoch, CreatedAt: res.CreatedAt, Duplicate: res.Duplicate,
		ExpiresAt: expiresAt(res.CreatedAt, req.Timer)})
	return nil
}

type messageInfo struct {
	Conversation protocol.ConversationID `json:"conversation"`
	Seq          uint64                  `json:"seq"`
	Sender       protocol.DeviceID       `json:"sender"`
	SenderUser   protocol.UserID         `json:"senderUser"`
	ClientID     string                  `json:"clientId"`
	Epoch        uint64                  `json:"epoch"`
	Envelope     B64                     `json:"envelope"`
	CreatedAt    int64                   `json:"createdAt"`
}

func msgInfo(m *store.Message) *messageInfo {
	return &messageInfo{Conversation: m.Conversation, Seq: m.Seq, Sender: m.Sender, SenderUser: m.SenderUser,
		ClientID: m.ClientID, Epoch: m.Epoch, Envelope: m.Envelope, CreatedAt: m.CreatedAt}
}

const maxPage = 500

func limitQuery(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, badRequest(fmt.Sprintf("limit is 1 to %d", maxPage), err)
	}
	return n, nil
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, c *call) error {
	after, err := uintQuery(r, "after", 0)
	if err != nil {
		return err
	}
	limit, err := limitQuery(r, 100)
	if err != nil {
		return err
	}
	// Only what was sent while the caller's account was a member, as
	// sync shows it: not the envelopes, senders and times of the spans
	// it was out of the conversation.
	ms, err := s.store.MemberMessages(r.Context(), c.user(), c.conv, after, limit)
	if err != nil {
		return err
	}
	out := make([]*messageInfo, len(ms))
	for i := range ms {
		out[i] = msgInfo(&ms[i])
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"messages": out})
	return nil
}
