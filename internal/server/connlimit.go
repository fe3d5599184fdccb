package server

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// HTTPServer returns an http.Server for the API with the timeouts of
// Config: a client that sends its request slowly (a byte at a time) is cut
// off after ReadTimeout, one that reads the answer slowly after
// WriteTimeout, and a keep-alive connection left idle is closed after
// IdleTimeout. A WebSocket is not subject to them: the upgrade takes the
// connection out of the HTTP server (which clears its deadlines), and the
// socket's liveness is checked with pings instead (see websocket).
func (s *Server) HTTPServer() *http.Server {
	c := s.cfg
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// Listener wraps ln so that each client address has at most
// Config.MaxConnsPerAddr connections open at once (IPv6 addresses counted
// by their Config.IPv6PrefixLen prefix). A connection over the cap is
// closed as soon as it is accepted, before anything is read from it, so
// refusing costs the server almost nothing and the connections already
// open keep working. Connections from trusted proxies are not capped: they
// carry many clients, whose requests the rate limits tell apart.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &capListener{Listener: ln, s: s, open: map[string]int{}}
}

type capListener struct {
	net.Listener
	s *Server

	mu       sync.Mutex
	open     map[string]int
	refused  int       // since the last log line
	loggedAt time.Time // of the last log line
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, ok := l.admit(c)
		if !ok {
			c.Close()
			continue
		}
		l.s.lm.connsOpen.Inc()
		return &capConn{Conn: c, l: l, key: key}, nil
	}
}

// admit counts c against its address, or reports that the address is at
// its cap. key is "" for an uncounted connection.
func (l *capListener) admit(c net.Conn) (key string, ok bool) {
	limit := l.s.cfg.MaxConnsPerAddr
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if limit < 0 || err != nil || l.s.trustedProxy(ap.Addr().Unmap()) {
		return "", true
	}
	key = ipKey(ap.Addr(), l.s.cfg.IPv6PrefixLen)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= limit {
		l.s.lm.connsRefused.Inc()
		l.refused++
		// One line every 10 s at most, however fast connections are refused.
		if now := time.Now(); now.Sub(l.loggedAt) >= 10*time.Second {
			l.s.log.Warn("connections refused: client address at its cap", "addr", key, "cap", limit, "refused", l.refused)
			l.loggedAt, l.refused = now, 0
		}
		return "", false
	}
	l.open[key]++
	return key, true
}

func (l *capListener) release(key string) {
	l.s.lm.connsOpen.Dec()
	if key == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// capConn gives its slot back when closed (once, however often Close is
// called: the HTTP server and a hijacker may both close it).
type capConn struct {
	net.Conn
	l    *capListener
	key  string
	once sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
