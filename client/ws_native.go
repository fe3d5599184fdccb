//go:build !js

package client

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// dialWS opens the event WebSocket with the token in the Authorization
// header.
func dialWS(ctx context.Context, url, token string) (*websocket.Conn, error) {
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	return conn, err
}
