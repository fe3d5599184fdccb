//go:build !js

package client

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// wsConn is the event stream on coder/websocket.
type wsConn struct{ c *websocket.Conn }

// dialWS opens the event WebSocket with the token in the Authorization
// header.
func dialWS(ctx context.Context, url, token string) (eventConn, error) {
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(eventReadLimit)
	return wsConn{conn}, nil
}

func (w wsConn) read(ctx context.Context) ([]byte, error) {
	_, data, err := w.c.Read(ctx)
	return data, err
}

func (w wsConn) close() { w.c.CloseNow() }
