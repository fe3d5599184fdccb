//go:build !js

package client

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"sandi.dev/protocol"
	"sandi.dev/protocol/attach"
)

// Saving an attachment to a file writes it once (protocol.md §13.4): the
// chunks are decrypted as the ciphertext arrives, into a hidden file
// beside the destination, while the ciphertext is hashed; the file is
// synced and moved to its name only once the whole ciphertext's digest
// matches its message's. Until then no plaintext is where the user finds
// it. An interrupted save keeps the hidden file and a record of how far
// it got (the state storage's key saves/…, see saveRecord) and continues
// from there when called again.

// ErrSaveInterrupted is a save that stopped part-way (the network, a
// cancelled context, the disk): SaveAttachment called again continues
// where it stopped.
var ErrSaveInterrupted = errors.New("the save was interrupted")

// saveSyncEvery is how many bytes of plaintext written make a save sync
// its hidden file in the background (one sync at a time) and record, once
// it is synced, where a resumed save may continue: the disk writes the
// file out while the rest is decrypted, and the sync before the rename
// has only the last part left.
const saveSyncEvery = 64 << 20

// saveHiddenPrefix begins the name of a save's hidden file, followed by
// the blob id: .sandi-save-BLOB in the destination's directory.
const saveHiddenPrefix = ".sandi-save-"

// saveRecord is how far an interrupted save got (storage key from
// saveKey): the first Chunks chunks are decrypted in its hidden file
// (Chunks × ChunkSize bytes, synced), and State is the SHA-256 state of the
// ciphertext up to their end (HeaderSize + Chunks × (ChunkSize+Overhead)
// bytes), as encoding.BinaryMarshaler gives it. It is kept in the client's
// state, not beside the file: a directory of the user's own, written
// atomically, under the client's lock. A resumed save trusts neither the
// record nor the hidden file: it encrypts the hidden file's plaintext
// again (encryption is deterministic under a file key) and continues only
// if that gives State.
type saveRecord struct {
	Blob    string `json:"blob"`
	Dir     string `json:"dir"` // the hidden file's directory
	Chunks  int64  `json:"chunks"`
	State   b64    `json:"state"`
	Created int64  `json:"created"` // Unix ms
}

// saveKey names the record of a save of blob into directory dir.
func saveKey(blob, dir string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s", blob, dir)
	return "saves/" + hex.EncodeToString(h.Sum(nil)[:16])
}

// SaveAttachment fetches an attachment of conversation conv and writes
// its plaintext to the file at path, calling progress (if not nil) with
// the ciphertext bytes fetched. It decrypts as the ciphertext arrives,
// into a hidden file in path's directory, and moves that file to path
// only after the whole ciphertext's SHA-256 digest matched the one its
// message gives and the file was synced: path never holds a partial or
// unchecked file. A file at path is replaced if replace, else it is an
// error wrapping fs.ErrExist and nothing is written there.
//
// Errors are DownloadAttachment's: a blob the server served wrong is an
// alarm (AlarmBlobDigest) and an error wrapping ErrServerMisbehaved, a
// blob that matches but does not decrypt is ErrAttachmentCorrupt, and in
// both cases the hidden file is removed. A save that stops part-way (the
// network, a cancelled ctx: ErrSaveInterrupted) keeps the hidden file and
// continues where it stopped when called again for the same attachment
// and directory. Saves of one attachment into one directory must not
// overlap.
func (c *Client) SaveAttachment(ctx context.Context, conv protocol.ConversationID, att Attachment, path string, replace bool, progress func(done, total int64)) error {
	if err := checkAttachment(att); err != nil {
		return fmt.Errorf("attachment: %w", err)
	}
	a, timeout, err := c.blobAPI()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil && !replace {
		return fmt.Errorf("%s: %w", path, fs.ErrExist)
	}
	c.dropOldSaves()
	key := saveKey(att.Blob, dir)
	hidden := filepath.Join(dir, saveHiddenPrefix+att.Blob)
	f, err := openHidden(hidden)
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	s, err := c.resumeSave(key, f, att)
	if err != nil {
		f.Close()
		return err
	}
	s.rec.Dir = dir
	discarded := false
	discard := func() {
		if discarded {
			return
		}
		discarded = true
		s.wait()
		s.w.close()
		f.Close()
		os.Remove(hidden)
		c.forgetKey(key)
	}
	fault := func(detail string) error {
		discard()
		return c.blobFault(conv, att, detail)
	}
	if err := c.fetchRanges(ctx, a, timeout, att, s.off, s, fault, progress); err != nil {
		switch {
		case errors.Is(err, ErrServerMisbehaved) || errors.Is(err, ErrAttachmentGone):
			discard()
		default:
			s.checkpoint(true)
			s.w.close()
			f.Close()
			err = fmt.Errorf("%w: %w", ErrSaveInterrupted, err)
		}
		return err
	}
	if subtle.ConstantTimeCompare(s.h.Sum(nil), att.Digest) != 1 {
		return fault(errBlobDigest)
	}
	if s.broken != nil {
		discard()
		return fmt.Errorf("%w (%v)", ErrAttachmentCorrupt, s.broken)
	}
	s.wait()
	err = cmp.Or(s.syncErr, s.w.close())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = release(hidden, path, replace)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err // the hidden file stays: the next attempt resumes from its record
	}
	os.Remove(hidden)
	c.forgetKey(key)
	return err
}

// openHidden opens (creating) a save's hidden file, refusing anything but
// a regular file of its own name (a link planted there, say).
func openHidden(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		var li os.FileInfo
		if li, err = os.Lstat(p); err == nil && (!li.Mode().IsRegular() || !os.SameFile(fi, li)) {
			err = fmt.Errorf("%s is not a regular file", p)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// release moves a finished hidden file to path: replacing what is there
// if replace, else only if nothing is (an error wrapping fs.ErrExist).
func release(hidden, path string, replace bool) error {
	if replace {
		return os.Rename(hidden, path)
	}
	return os.Link(hidden, path)
}

// resumeSave starts the save of att into f: from the record under key if
// the record and f agree with each other, else from the start (f
// truncated).
func (c *Client) resumeSave(key string, f *os.File, att Attachment) (*saveFile, error) {
	s, err := c.newSaveFile(key, f, att)
	if err != nil {
		return nil, err
	}
	if rec, h := c.verifySave(key, f, att); h != nil {
		s.rec, s.h = rec, h
		s.k = rec.Chunks
		s.off = attach.HeaderSize + rec.Chunks*(attach.ChunkSize+attach.Overhead)
	}
	if err := f.Truncate(s.k * attach.ChunkSize); err != nil {
		s.w.close()
		return nil, err
	}
	if _, err := f.Seek(s.k*attach.ChunkSize, io.SeekStart); err != nil {
		s.w.close()
		return nil, err
	}
	return s, nil
}

// newSaveFile returns a save of att into f from its first byte.
func (c *Client) newSaveFile(key string, f *os.File, att Attachment) (*saveFile, error) {
	op, err := attach.NewOpener(att.Key)
	if err != nil {
		return nil, err
	}
	return &saveFile{
		c: c, key: key, f: f, w: newBehindWriter(f), op: op, h: sha256.New(),
		total: attach.EncryptedSize(att.Size), buf: make([]byte, 0, attach.ChunkSize+attach.Overhead),
		turn: make(chan struct{}, 1),
		rec:  saveRecord{Blob: att.Blob, Created: c.now().UnixMilli()},
	}, nil
}

// verifySave reads the record under key and checks it against f: the
// first Chunks chunks of f's plaintext, encrypted again under att's key,
// must give the recorded SHA-256 state. It returns the record and the
// hash at that state, or a nil hash (a missing, torn or foreign record,
// a hidden file truncated or changed: the save starts over).
func (c *Client) verifySave(key string, f *os.File, att Attachment) (saveRecord, hash.Hash) {
	c.mu.Lock()
	b, err := c.st.Get(key)
	c.mu.Unlock()
	var rec saveRecord
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Blob != att.Blob ||
		rec.Chunks <= 0 || rec.Chunks > att.Size/attach.ChunkSize {
		return rec, nil
	}
	n := rec.Chunks * attach.ChunkSize
	if fi, err := f.Stat(); err != nil || fi.Size() < n {
		return rec, nil
	}
	h := sha256.New()
	w, err := attach.NewWriter(h, att.Key)
	if err != nil {
		return rec, nil
	}
	// n is a whole number of chunks: each is sealed as a middle chunk
	// once its last byte is written, without Close.
	if _, err := io.Copy(w, io.NewSectionReader(f, 0, n)); err != nil {
		return rec, nil
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil || subtle.ConstantTimeCompare(state, rec.State) != 1 {
		return rec, nil
	}
	return rec, h
}

// dropOldSaves forgets the saves left unfinished for longer than spoolAge,
// removing their hidden files (and the spools of downloads as old).
func (c *Client) dropOldSaves() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ds, ok := c.st.(*DirStorage); ok {
		dropOldSpools(ds)
	}
	keys, err := c.st.List("saves/")
	if err != nil {
		return
	}
	for _, k := range keys {
		b, err := c.st.Get(k)
		if err != nil {
			continue
		}
		var rec saveRecord
		if json.Unmarshal(b, &rec) == nil && c.now().Sub(time.UnixMilli(rec.Created)) <= spoolAge {
			continue
		}
		if blobIDForm(rec.Blob) && filepath.IsAbs(rec.Dir) {
			os.Remove(filepath.Join(rec.Dir, saveHiddenPrefix+rec.Blob))
		}
		c.st.Delete(k)
	}
}

// saveFile receives a save's ciphertext (as an io.Writer, from
// fetchRanges): it hashes it, cuts it into chunks (§13.3), opens each and
// writes its plaintext to the hidden file. A chunk that does not open
// (broken) stops the decryption but not the hashing: the digest, checked
// at the end, tells whether the server or the sender is at fault.
type saveFile struct {
	c      *Client
	key    string
	rec    saveRecord // what checkpoint records; Chunks and State are set there
	f      *os.File
	w      *behindWriter
	op     *attach.Opener
	h      hash.Hash // of the ciphertext up to the end of chunk k
	total  int64     // bytes of ciphertext
	off    int64     // bytes of ciphertext received
	hdr    []byte    // the header as it arrives
	buf    []byte    // the chunk being received
	k      int64     // chunks done
	broken error
	since  int64         // plaintext written since the last sync began
	turn   chan struct{} // held by the checkpoint running
	// syncErr is the first failed sync of a checkpoint (set while it holds
	// turn): the save fails, since a sync that failed may have lost
	// what it was to write, whatever later syncs say.
	syncErr error
}

func (s *saveFile) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.off < attach.HeaderSize {
			k := min(len(p), attach.HeaderSize-int(s.off))
			s.hdr, p, s.off = append(s.hdr, p[:k]...), p[k:], s.off+int64(k)
			if s.off == attach.HeaderSize {
				s.h.Write(s.hdr)
				s.broken = attach.CheckHeader(s.hdr)
			}
			continue
		}
		start := attach.HeaderSize + s.k*(attach.ChunkSize+attach.Overhead)
		size := min(attach.ChunkSize+attach.Overhead, s.total-start)
		k := min(len(p), int(size)-len(s.buf))
		if k <= 0 {
			return n - len(p), errors.New("download: more ciphertext than the attachment's size")
		}
		s.buf, p, s.off = append(s.buf, p[:k]...), p[k:], s.off+int64(k)
		if int64(len(s.buf)) == size {
			if err := s.chunk(start+size == s.total); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// chunk hashes, opens and writes the chunk received.
func (s *saveFile) chunk(last bool) error {
	s.h.Write(s.buf)
	if s.broken == nil {
		pt, err := s.op.Open(s.buf[:0], s.buf, uint64(s.k), last)
		if err != nil {
			s.broken = err
		} else if _, err := s.w.Write(pt); err != nil {
			return err
		}
	}
	s.buf = s.buf[:0]
	s.k++
	if s.since += attach.ChunkSize; s.since >= saveSyncEvery && !last {
		s.checkpoint(false)
	}
	return nil
}

// checkpoint syncs the hidden file and then records how far it got: in
// the background, unless one is running already (then nothing), or, if
// wait, now, after the one running.
func (s *saveFile) checkpoint(wait bool) {
	if wait {
		s.turn <- struct{}{}
	} else {
		select {
		case s.turn <- struct{}{}:
		default:
			return
		}
	}
	s.since = 0
	state, err := s.h.(encoding.BinaryMarshaler).MarshalBinary()
	// The hash has taken whole chunks only: its state is at the end of
	// chunk k.
	if s.broken != nil || s.k == 0 || err != nil || wait && s.w.drain() != nil {
		<-s.turn
		return
	}
	s.rec.Chunks, s.rec.State = s.k, state
	rec, err := json.Marshal(s.rec)
	if err != nil {
		<-s.turn
		return
	}
	run := func() {
		defer func() { <-s.turn }()
		if err := s.f.Sync(); err != nil {
			s.syncErr = cmp.Or(s.syncErr, err)
			return
		}
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		s.c.st.Put(s.key, rec) // best effort: without it, a resumed save starts over
	}
	if wait {
		run() // after drain: everything is written
	} else {
		s.w.flush(func() { go run() }) // once what is buffered is written
	}
}

// wait waits for the checkpoint running, if any.
func (s *saveFile) wait() {
	s.turn <- struct{}{}
	<-s.turn
}

// behindWriter writes to a file from a goroutine of its own, through
// behindBuffers buffers of behindBuffer bytes, so that fetching, hashing
// and decrypting go on while the file system takes the writes (which it
// holds up when the disk falls behind).
type behindWriter struct {
	f      *os.File
	cur    []byte
	made   int // buffers allocated, on demand
	free   chan []byte
	jobs   chan writeJob
	done   chan struct{}
	closed bool
	mu     sync.Mutex
	err    error // the first failed write
}

// writeJob is bytes to write, and what to call once they are.
type writeJob struct {
	b    []byte
	then func()
}

const (
	behindBuffers = 4
	behindBuffer  = 1 << 20
)

func newBehindWriter(f *os.File) *behindWriter {
	w := &behindWriter{f: f, free: make(chan []byte, behindBuffers), jobs: make(chan writeJob, behindBuffers), done: make(chan struct{})}
	w.next()
	go w.run()
	return w
}

func (w *behindWriter) run() {
	defer close(w.done)
	for j := range w.jobs {
		if len(j.b) > 0 && w.failed() == nil {
			if _, err := w.f.Write(j.b); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}
		w.free <- j.b[:0]
		if j.then != nil {
			j.then()
		}
	}
}

func (w *behindWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Write buffers p; it returns the error of a write that failed before.
func (w *behindWriter) Write(p []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(w.cur[len(w.cur):cap(w.cur)], p)
		w.cur, p = w.cur[:len(w.cur)+k], p[k:]
		if len(w.cur) == cap(w.cur) {
			w.flush(nil)
		}
	}
	return n, nil
}

// flush hands what is buffered to the writing goroutine, which calls then
// (if not nil) once it has written it and everything before.
func (w *behindWriter) flush(then func()) {
	w.jobs <- writeJob{w.cur, then}
	w.next()
}

// next takes the buffer to fill: one the writing goroutine is done with,
// or a new one while fewer than behindBuffers are made (a small file
// needs one), or else the first the writing goroutine gives back.
func (w *behindWriter) next() {
	select {
	case w.cur = <-w.free:
		return
	default:
	}
	if w.made < behindBuffers {
		w.made++
		w.cur = make([]byte, 0, behindBuffer)
		return
	}
	w.cur = <-w.free
}

// drain waits until everything written so far is in the file.
func (w *behindWriter) drain() error {
	ack := make(chan struct{})
	w.flush(func() { close(ack) })
	<-ack
	return w.failed()
}

// close writes what is buffered and ends the writing goroutine.
func (w *behindWriter) close() error {
	if !w.closed {
		w.closed = true
		w.jobs <- writeJob{b: w.cur}
		close(w.jobs)
		<-w.done
	}
	return w.failed()
}
