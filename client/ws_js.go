//go:build js

package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall/js"
)

// jsWS is the event WebSocket on the browser's WebSocket. A WebSocket
// library would link net/http (for its types) into the module, with what
// its packages initialise, for a page that needs none of it.
type jsWS struct {
	ws       js.Value
	funcs    []js.Func
	mu       sync.Mutex // guards buf
	buf      [][]byte   // messages not read yet, in arrival order
	signal   chan struct{}
	closed   chan struct{} // closed by close or the close event
	closeErr error         // set before closed is closed
	once     sync.Once
}

// dialWS opens the event WebSocket; a browser cannot set headers on it, so
// the token goes in the first frame.
func dialWS(ctx context.Context, url, token string) (eventConn, error) {
	url = strings.Replace(url, "http://", "ws://", 1)
	url = strings.Replace(url, "https://", "wss://", 1)
	c := &jsWS{signal: make(chan struct{}, 1), closed: make(chan struct{})}
	var ws js.Value
	var newErr error
	func() {
		defer func() {
			// The constructor throws (a SyntaxError) on a malformed URL.
			if r := recover(); r != nil {
				newErr = fmt.Errorf("WebSocket %q: %v", url, r)
			}
		}()
		ws = js.Global().Get("WebSocket").New(url)
	}()
	if newErr != nil {
		return nil, newErr
	}
	c.ws = ws
	ws.Set("binaryType", "arraybuffer")
	opened := make(chan struct{})
	c.on("open", func(js.Value) { close(opened) })
	c.on("message", func(e js.Value) {
		d := e.Get("data")
		var b []byte
		if d.Type() == js.TypeString {
			b = []byte(d.String())
		} else {
			u := js.Global().Get("Uint8Array").New(d)
			b = make([]byte, u.Get("length").Int())
			js.CopyBytesToGo(b, u)
		}
		// A callback must not block: the message waits in buf.
		c.mu.Lock()
		c.buf = append(c.buf, b)
		c.mu.Unlock()
		select {
		case c.signal <- struct{}{}:
		default:
		}
	})
	c.on("close", func(e js.Value) {
		err := fmt.Errorf("WebSocket closed: status %d %s", e.Get("code").Int(), e.Get("reason").String())
		if !e.Get("wasClean").Bool() {
			err = fmt.Errorf("unclean connection close: %w", err)
		}
		c.finish(err)
		c.release()
	})
	c.on("error", func(js.Value) {}) // a close event follows
	select {
	case <-opened:
	case <-c.closed:
		return nil, fmt.Errorf("WebSocket %q: %w", url, c.closeErr)
	case <-ctx.Done():
		c.close()
		return nil, ctx.Err()
	}
	b, err := json.Marshal(map[string]string{"token": token})
	if err != nil {
		c.close()
		return nil, err
	}
	ws.Call("send", string(b))
	return c, nil
}

func (c *jsWS) on(event string, f func(js.Value)) {
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		f(args[0])
		return nil
	})
	c.funcs = append(c.funcs, fn)
	c.ws.Call("addEventListener", event, fn)
}

func (c *jsWS) finish(err error) {
	c.once.Do(func() {
		c.closeErr = err
		close(c.closed)
	})
}

// release frees the listeners, from the close event: JavaScript calls
// none of them after it.
func (c *jsWS) release() {
	for _, f := range c.funcs {
		f.Release()
	}
	c.funcs = nil
}

// read returns the next message; a message over eventReadLimit closes the
// connection.
func (c *jsWS) read(ctx context.Context) ([]byte, error) {
	for {
		c.mu.Lock()
		var b []byte
		if len(c.buf) > 0 {
			b = c.buf[0]
			c.buf[0] = nil
			c.buf = c.buf[1:]
		}
		c.mu.Unlock()
		if b != nil {
			if len(b) > eventReadLimit {
				c.close()
				return nil, fmt.Errorf("WebSocket message of %d bytes, over the %d-byte limit", len(b), eventReadLimit)
			}
			return b, nil
		}
		select {
		case <-c.signal:
			continue
		case <-c.closed:
			return nil, c.closeErr
		case <-ctx.Done():
			c.close()
			return nil, ctx.Err()
		}
	}
}

// close closes the WebSocket without waiting for the server's answer.
func (c *jsWS) close() {
	c.finish(errors.New("WebSocket closed by the client"))
	c.ws.Call("close", 1000)
}
