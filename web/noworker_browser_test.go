package web_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestBrowserAttachmentsWithoutWorker: in a browser without Web Workers
// (or one whose worker cannot start), the module encrypts and decrypts
// attachments on the page's thread: a file sent from the page is saved
// byte-identical by another user, and a file that user sends is saved by
// the page; the worker did none of it.
func TestBrowserAttachmentsWithoutWorker(t *testing.T) {
	requireBuilt(t)
	url := startServer(t)
	alice := newPage(t, startBrowser(t), "alice", url)
	alice.do("no workers", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument,
			cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `delete window.Worker; window.Worker = undefined;`})
		return err
	}))
	alice.reload("auth")
	alice.register("alice")
	if eval[bool](alice, `typeof Worker !== "undefined"`) {
		t.Fatal("the page still has Worker")
	}
	bob := newUser(t, url, "bob")
	alice.createConversation("bob")
	conv := onlyConversation(t, bob)

	data := bytes.Repeat([]byte("no worker here. "), 40000) // 640,000 bytes: several chunks
	path := filepath.Join(t.TempDir(), "plain.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	alice.attachFiles(path)
	if got := bob.save(conv, "plain.bin"); !bytes.Equal(got, data) {
		t.Fatalf("bob saved %d bytes, not the %d alice sent", len(got), len(data))
	}

	reply := bytes.Repeat([]byte("an answer. "), 30000)
	bob.sendFile(conv, "reply.bin", "application/octet-stream", reply)
	save := `#messages .att-save[aria-label="Save reply.bin"]`
	alice.wait("reply.bin", `!!document.querySelector(`+js(save)+`)`)
	alice.click(save)
	alice.wait("reply.bin saved", `document.querySelector(`+js(save)+`).closest(".att").dataset.state === "saved"`)
	if w := eval[map[string]float64](alice, `sandiAttach.workerBytes()`); w["sealed"] != 0 || w["opened"] != 0 {
		alice.fail("a worker was used: %v", w)
	}
	alice.noProblems()
}
