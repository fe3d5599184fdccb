package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/server"
	"sandi.dev/protocol"
)

// TestUploadBesideSendFlood: uploads yield to message sends, but only so
// far. A send whose body a client holds back (as it may for the server's
// read timeout, and then again) is not one uploads yield to: an upload
// beside it alone never waits (sandi_upload_yields_total stays 0). While
// several clients then send messages as fast as they can, an upload
// still completes, and the blob served is the one uploaded; the held send
// is then answered too. The flood goes on until the upload is done, for
// at most floodFor; an upload still running when it ends fails the test.
func TestUploadBesideSendFlood(t *testing.T) {
	const (
		senders  = 6
		floodFor = 20 * time.Second
		size     = 1<<20 + 12345
	)
	e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{RotateAfterMessages: 1 << 30})
	up := e.register("uploader")
	upConv, err := up.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	ss := e.loners("sender", senders)
	stop := make(chan struct{}) // ends the flood and releases the held send
	held := e.register("holder")
	heldConv, err := held.create(nil)
	if err != nil {
		t.Fatal(err)
	}
	heldDone, heldSent := make(chan error, 1), make(chan struct{})
	go func() { heldDone <- held.sendHeld(heldConv, heldSent, stop) }()
	select {
	case <-heldSent:
	case err := <-heldDone:
		t.Fatalf("the held send ended before the upload: %v", err)
	}
	quiet := randomBytes(size)
	id := up.upload(upConv, quiet)
	if r := up.fetch(id, ""); r.status != 200 || !bytes.Equal(r.body, quiet) {
		t.Fatalf("the blob uploaded beside the held send: %d, %d bytes", r.status, len(r.body))
	}
	if n := e.metricOr0("sandi_upload_yields_total"); n != 0 {
		t.Fatalf("an upload beside a held send's body waited for it %v times", n)
	}

	var (
		started  sync.WaitGroup
		wg       sync.WaitGroup
		sent     atomic.Int64 // sends answered before the upload was done
		uploaded atomic.Bool
	)
	started.Add(senders)
	for _, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if _, err := s.d.send(s.conv, 1, "flood"); err != nil {
					t.Errorf("%s: send: %v", s.d.name, err)
					if i == 0 {
						started.Done()
					}
					return
				}
				if i == 0 {
					started.Done()
				}
				if !uploaded.Load() {
					sent.Add(1)
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	started.Wait() // every sender is at it before the upload begins

	data := randomBytes(size)
	done := make(chan string, 1)
	go func() {
		defer close(done)
		a, err := up.newBlob(upConv, size)
		if err != nil {
			t.Errorf("new blob: %v", err)
			return
		}
		for n := 0; n < a.Parts; n++ {
			end := min(len(data), (n+1)*blob.PartSize)
			if r := up.putPart(a.Blob, n, data[n*blob.PartSize:end]); r.status != 204 {
				t.Errorf("part %d: %d %s", n, r.status, r.body)
				return
			}
		}
		if err := up.do("POST", "/api/blobs/"+a.Blob+"/complete", nil, nil); err != nil {
			t.Errorf("complete: %v", err)
			return
		}
		uploaded.Store(true)
		done <- a.Blob
	}()
	id = ""
	select {
	case id = <-done:
	case <-time.After(floodFor):
	}
	close(stop)
	wg.Wait()
	if err := <-heldDone; err != nil {
		t.Errorf("the held send: %v", err)
	}
	if id == "" {
		<-done // the upload goes on once the flood is over
		t.Fatalf("the upload did not complete during %v of sends (%d sends answered meanwhile)", floodFor, sent.Load())
	}
	if sent.Load() < senders {
		t.Fatalf("only %d sends were answered during the upload: no flood", sent.Load())
	}
	r := up.fetch(id, "")
	if r.status != 200 || !bytes.Equal(r.body, data) {
		t.Fatalf("the blob served (%d, %d bytes) is not the one uploaded (%d bytes)", r.status, len(r.body), len(data))
	}
	t.Logf("upload of %d bytes done beside %d sends", size, sent.Load())
}

// sendHeld posts a message in epoch 1 of conv whose body it holds back
// until release is closed: the send is in the server's handler all the
// while. It closes sent once the request's headers are sent.
func (d *device) sendHeld(conv protocol.ConversationID, sent chan<- struct{}, release <-chan struct{}) error {
	ep, err := d.epoch(conv, 1)
	if err != nil {
		return err
	}
	env, err := ep.Encrypt(d.id, []byte("held"))
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"clientId": d.dev.String() + "-held", "envelope": b64(env.Marshal())})
	if err != nil {
		return err
	}
	req, err := http.NewRequest("POST", d.e.url+"/api/conversations/"+conv.String()+"/messages", &heldBody{release: release, rest: body})
	if err != nil {
		return err
	}
	var once sync.Once
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{WroteHeaders: func() { once.Do(func() { close(sent) }) }}))
	req.ContentLength = int64(len(body))
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// heldBody reads nothing until release is closed, then rest.
type heldBody struct {
	release <-chan struct{}
	rest    []byte
}

func (h *heldBody) Read(p []byte) (int, error) {
	<-h.release
	if len(h.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.rest)
	h.rest = h.rest[n:]
	return n, nil
}

// loner is an account with a conversation of its own.
type loner struct {
	d    *device
	conv protocol.ConversationID
}

// loners registers n accounts, prefix followed by a, b, c…, each with a
// conversation of its own.
func (e *env) loners(prefix string, n int) []loner {
	e.t.Helper()
	var out []loner
	for i := range n {
		d := e.register(prefix + string(rune('a'+i)))
		c, err := d.create(nil)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, loner{d, c})
	}
	return out
}

// TestUploadPacedBesideSends: an upload without a send near it is not
// paced; after a message send, the reads of an upload's body wait for the
// uploads' pace (sandi_upload_paced_seconds_total grows), and the blob is
// whole; with the pace off (negative), a send paces nothing.
func TestUploadPacedBesideSends(t *testing.T) {
	for _, c := range []struct {
		name  string
		pace  int64
		paced bool
	}{{"paced", 1 << 20, true}, {"off", -1, false}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, filepath.Join(t.TempDir(), "sandi.db"), server.Config{UploadPace: c.pace})
			d := e.register("alice")
			conv, err := d.create(nil)
			if err != nil {
				t.Fatal(err)
			}
			data := randomBytes(512 << 10)
			id := d.upload(conv, data)
			if n := e.metricOr0("sandi_upload_paced_seconds_total"); n != 0 {
				t.Fatalf("an upload with no send near it waited %v s for the pace", n)
			}
			if _, err := d.send(conv, 1, "hello"); err != nil {
				t.Fatal(err)
			}
			id2 := d.upload(conv, data)
			waited := e.metricOr0("sandi_upload_paced_seconds_total")
			if (waited > 0) != c.paced {
				t.Fatalf("pace %d: an upload after a send waited %v s for the pace", c.pace, waited)
			}
			for _, id := range []string{id, id2} {
				if r := d.fetch(id, ""); r.status != 200 || !bytes.Equal(r.body, data) {
					t.Fatalf("blob %s: %d, %d bytes", id, r.status, len(r.body))
				}
			}
		})
	}
}
