//go:build js && wasm

package main

// The worker mode: the same module, started by static/attachworker.js in a
// dedicated Web Worker with the argument "worker", encrypts the files the
// page uploads off the page's thread (docs/operations.md, "Web client").
// It offers only sandiWorker.seal, .open and .cancel: it never opens the
// device's state (IndexedDB), holds no account, token or conversation key,
// and makes no request but reading the Blobs it is given. The page's
// module keeps the transfers (the upload's state, the server's parts,
// resuming, the download's ranges) and the files' keys, which reach the
// worker in a postMessage, one per file.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall/js"

	"sandi.dev/client"
	"sandi.dev/protocol/attach"
)

// workerMode: the argument attachworker.js starts the module with.
const workerMode = "worker"

// worker offers the worker's functions as the global object sandiWorker
// and waits forever.
func worker() {
	obj := js.Global().Get("Object").New()
	obj.Set("seal", js.FuncOf(func(_ js.Value, args []js.Value) any {
		return promise(func() (any, error) { return seal(args) })
	}))
	obj.Set("open", js.FuncOf(func(_ js.Value, args []js.Value) any {
		return promise(func() (any, error) { return open(args) })
	}))
	obj.Set("cancel", js.FuncOf(func(_ js.Value, args []js.Value) any {
		a.cancel(args)
		return nil
	}))
	js.Global().Set("sandiWorker", obj)
	if ready := js.Global().Get("sandiLoaded"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}

// Bounds on what seal accepts from the page: the server's part sizes
// (client.beginUpload checks the same).
const (
	minPart = 1 << 20
	maxPart = 16 << 20
)

// seal(id, file, key, partSize, onPart, onRead) encrypts the File file
// under key (a Uint8Array) with client.SealFile and resolves to the
// ciphertext's digest (a Uint8Array). onPart(part, fingerprint) is given
// each part of partSize bytes (the last shorter) as a Uint8Array of its
// own, whose buffer the caller may transfer, and returns a Promise that
// settles once the page took it: the next part waits for that, so at most
// one part is on its way. onRead(n) is told the bytes of the file read,
// at most every 50 ms. cancel(id) stops it (rejects with "canceled").
func seal(args []js.Value) (any, error) {
	if len(args) < 5 || args[1].Type() != js.TypeObject || args[2].Type() != js.TypeObject || args[3].Type() != js.TypeNumber || args[4].Type() != js.TypeFunction {
		return nil, errors.New("seal(id, file, key, partSize, onPart, onRead)")
	}
	file, onPart := args[1], args[4]
	key := make([]byte, args[2].Get("length").Int())
	if len(key) != attach.KeySize {
		return nil, errors.New("seal: a key is 32 bytes")
	}
	js.CopyBytesToGo(key, args[2])
	partSize := int64(args[3].Float())
	if partSize < minPart || partSize > maxPart {
		return nil, errors.New("seal: a part is 1 to 16 MiB")
	}
	ctx, done := a.jobs.start(str(args, 0))
	defer done()
	size := int64(file.Get("size").Float())
	report := progress(args, 5)
	r := &blobReader{ctx: ctx, blob: file, size: size, read: func(n int64) {
		if report != nil {
			report(n, size)
		}
	}, noYield: true}
	var taken js.Value // the Promise of the last part's taking
	wait := func() error {
		if taken.IsUndefined() {
			return nil
		}
		_, err := client.Await(ctx, taken)
		taken = js.Undefined()
		return err
	}
	emit := func(part, fingerprint []byte) ([]byte, error) {
		if err := wait(); err != nil {
			return part, err
		}
		taken = onPart.Invoke(uint8Array(part), uint8Array(fingerprint))
		return part, nil
	}
	digest, err := client.SealFile(ctx, r, size, key, partSize, make([]byte, 0, min(partSize, attach.EncryptedSize(size))), emit)
	if err == nil {
		err = wait()
	}
	if err != nil {
		return nil, canceled(ctx, err)
	}
	return uint8Array(digest), nil
}

// open(id, ciphertext, key, digest, size, type) checks a download's
// ciphertext (a Blob) against digest (its SHA-256, a Uint8Array) and, only
// if they match, decrypts it with key (client.DecryptAttachment) into a
// Blob of the media type type: it resolves to {blob}, or to {mismatch:
// true} for another digest, or {corrupt: reason} for a ciphertext that
// does not decrypt. cancel(id) stops it.
func open(args []js.Value) (any, error) {
	if len(args) < 6 || args[1].Type() != js.TypeObject || args[2].Type() != js.TypeObject || args[3].Type() != js.TypeObject || args[4].Type() != js.TypeNumber {
		return nil, errors.New("open(id, ciphertext, key, digest, size, type)")
	}
	cipher := args[1]
	key, digest := make([]byte, args[2].Get("length").Int()), make([]byte, args[3].Get("length").Int())
	if len(key) != attach.KeySize || len(digest) != sha256.Size {
		return nil, errors.New("open: a key and a digest are 32 bytes")
	}
	js.CopyBytesToGo(key, args[2])
	js.CopyBytesToGo(digest, args[3])
	ctx, done := a.jobs.start(str(args, 0))
	defer done()
	n := int64(cipher.Get("size").Float())
	h := sha256.New()
	if _, err := io.Copy(h, &blobReader{ctx: ctx, blob: cipher, size: n, noYield: true}); err != nil {
		return nil, canceled(ctx, err)
	}
	out := js.Global().Get("Object").New()
	if subtle.ConstantTimeCompare(h.Sum(nil), digest) != 1 {
		out.Set("mismatch", true)
		return out, nil
	}
	w := &blobWriter{ctx: ctx, parts: js.Global().Get("Array").New(), noYield: true}
	att := client.Attachment{Key: key, Size: int64(args[4].Float())}
	if err := client.DecryptAttachment(att, &blobReader{ctx: ctx, blob: cipher, size: n, noYield: true}, w); err != nil {
		if errors.Is(err, client.ErrAttachmentCorrupt) {
			out.Set("corrupt", err.Error())
			return out, nil
		}
		return nil, canceled(ctx, err)
	}
	out.Set("blob", w.blob(str(args, 5)))
	return out, nil
}

// workerOpener is a client.Opener that has the page's worker check and
// decrypt a download: opener is attach.js's {open(ciphertext, key, digest,
// size, type), cancel()} for one download, which passes on to open above.
func workerOpener(opener js.Value) client.Opener {
	return func(ctx context.Context, cipher js.Value, att client.Attachment) (js.Value, error) {
		stop := context.AfterFunc(ctx, func() { opener.Call("cancel") })
		defer stop()
		v, err := client.Await(ctx, opener.Call("open", cipher, uint8Array(att.Key), uint8Array(att.Digest), float64(att.Size), inlineType(att.Type)))
		switch {
		case err != nil:
			return js.Value{}, err
		case v.Type() != js.TypeObject:
		case v.Get("mismatch").Truthy():
			return js.Value{}, client.ErrServerMisbehaved
		case v.Get("corrupt").Type() == js.TypeString:
			return js.Value{}, fmt.Errorf("%w (%s)", client.ErrAttachmentCorrupt, v.Get("corrupt").String())
		case v.Get("blob").InstanceOf(js.Global().Get("Blob")):
			return v.Get("blob"), nil
		}
		return js.Value{}, errors.New("decrypt the file: the worker's answer is not a file")
	}
}

// uint8Array copies b to a new Uint8Array.
func uint8Array(b []byte) js.Value {
	u := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u, b)
	return u
}

// workerSealer is a client.Sealer that has the page's worker encrypt the
// file: sealer is attach.js's {seal(key, partSize, onPart, onRead),
// cancel()} for one File, which passes on to seal above. Each part is
// copied into the upload's buffer as it comes; the page's thread does no
// cryptography. read is told the bytes of the file read.
func workerSealer(sealer js.Value, read func(n int64)) client.Sealer {
	return func(ctx context.Context, key []byte, partSize int64, buf []byte, emit func(part, fingerprint []byte) ([]byte, error)) ([]byte, error) {
		var mu sync.Mutex // the worker hands over one part at a time; this says so to Go
		var failed error  // emit's, which rejected a part (the seal then fails)
		onPart := js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) {
				mu.Lock()
				defer mu.Unlock()
				if failed != nil {
					return nil, failed
				}
				if len(args) < 2 {
					failed = errors.New("encrypt the file: a part without its fingerprint")
					return nil, failed
				}
				n, f := args[0].Get("length").Int(), args[1].Get("length").Int()
				if n > cap(buf) || f > 64 {
					failed = errors.New("encrypt the file: a part larger than a part")
					return nil, failed
				}
				part, fingerprint := buf[:n], make([]byte, f)
				js.CopyBytesToGo(part, args[0])
				js.CopyBytesToGo(fingerprint, args[1])
				next, err := emit(part, fingerprint)
				if err != nil {
					failed = err
					return nil, err
				}
				buf = next
				return nil, nil
			})
		})
		defer onPart.Release()
		onRead := js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) > 0 && args[0].Type() == js.TypeNumber {
				read(int64(args[0].Float()))
			}
			return nil
		})
		defer onRead.Release()
		stop := context.AfterFunc(ctx, func() { sealer.Call("cancel") })
		defer stop()
		v, err := client.Await(ctx, sealer.Call("seal", uint8Array(key), float64(partSize), onPart, onRead))
		mu.Lock()
		defer mu.Unlock()
		if failed != nil {
			return nil, failed
		}
		if err != nil {
			return nil, err
		}
		if v.Type() != js.TypeObject || v.Get("length").Int() != 32 {
			return nil, errors.New("encrypt the file: the worker's digest is not 32 bytes")
		}
		digest := make([]byte, 32)
		js.CopyBytesToGo(digest, v)
		return digest, nil
	}
}
