package server

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example reverse-proxy configuration in docs/examples forwards every
// route of the API, upgrades the WebSocket route and keeps it open longer
// than the server's ping interval, and passes the client address on.
func TestClusterExampleProxyConfig(t *testing.T) {
	data, err := os.ReadFile("../../docs/examples/nginx-cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	// location blocks: modifier, path, body (no nested blocks in the example).
	locs := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)location\s+(=\s+)?(\S+)\s*\{(.*?)\}`).FindAllStringSubmatch(conf, -1) {
		key := m[2]
		if m[1] != "" {
			key = "=" + key
		}
		locs[key] = m[3]
	}
	if n := len(regexp.MustCompile(`(?m)^\s*server\s+\S+:\d+`).FindAllString(conf, -1)); n < 2 {
		t.Errorf("the upstream names %d nodes", n)
	}
	s := New(nil, nil, Config{})
	var ping time.Duration = s.cfg.WebSocketPing
	for _, rt := range s.routes() {
		// nginx's choice: an exact match first, else the longest prefix.
		body, ok := locs["="+rt.Pattern]
		if !ok {
			best := ""
			for k := range locs {
				if !strings.HasPrefix(k, "=") && strings.HasPrefix(rt.Pattern, k) && len(k) > len(best) {
					best = k
				}
			}
			if best == "" {
				t.Errorf("%s %s: no location forwards it", rt.Method, rt.Pattern)
				continue
			}
			body = locs[best]
		}
		need := []string{"proxy_pass http://sandi;", "X-Forwarded-For $proxy_add_x_forwarded_for"}
		if rt.Pattern == "/api/ws" {
			need = append(need, "proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;", `proxy_set_header Connection "upgrade";`)
			m := regexp.MustCompile(`proxy_read_timeout (\d+)s;`).FindStringSubmatch(body)
			if m == nil {
				t.Errorf("the WebSocket location sets no proxy_read_timeout (nginx's default, 60 s, is what it must exceed the ping interval by)")
			} else if n, _ := strconv.Atoi(m[1]); time.Duration(n)*time.Second <= ping {
				t.Errorf("the WebSocket location's read timeout %ss is not longer than the ping interval %v", m[1], ping)
			}
		}
		for _, n := range need {
			if !strings.Contains(body, n) {
				t.Errorf("%s %s: its location lacks %q", rt.Method, rt.Pattern, n)
			}
		}
	}
}
