package server

import "context"

// Disappearing messages (protocol.md §13.10). A member that sends in a
// conversation whose timer is on names the timer beside the envelope; the
// server stores the message's expiry, its own clock's time of storing
// plus the timer, and deletes the message once that time has passed. The
// expiry is a courtesy the server does to its members, not a guarantee
// they rely on: each device deletes the message on its own clock by the
// timer sealed in the content, so a server that keeps an envelope, or
// serves it again, shows nothing.

// expiresAt is the expiry of a message stored at now (Unix ms) with a
// timer of timer seconds; 0 (never) when the timer is off.
func expiresAt(now int64, timer uint32) int64 {
	if timer == 0 {
		return 0
	}
	return now + int64(timer)*1000
}

// CollectMessages deletes, at the configured clock's now, every message
// whose expiry has passed, and returns how many it deleted. Their blobs
// are left to CollectBlobs, which deletes a blob none of whose messages
// remain.
func (s *Server) CollectMessages(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.store.DeleteExpiredMessages(ctx, s.now(), collectBatch)
		total += n
		s.metrics.msgsExpired.Add(float64(n))
		if err != nil || n < collectBatch {
			if total > 0 {
				s.log.Info("message expiry", "deleted", total)
			}
			return total, err
		}
	}
}
