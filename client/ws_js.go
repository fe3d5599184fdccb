//go:build js

package client

import (
	"context"
	"encoding/json"

	"github.com/coder/websocket"
)

// dialWS opens the event WebSocket; a browser cannot set headers on it, so
// the token goes in the first frame.
func dialWS(ctx context.Context, url, token string) (*websocket.Conn, error) {
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(map[string]string{"token": token})
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		conn.CloseNow()
		return nil, err
	}
	return conn, nil
}
