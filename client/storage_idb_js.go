//go:build js

package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall/js"
)

// IDBStorage keeps a device's state in the browser's IndexedDB: one
// database with one object store. A value is kept as parts under the keys
// [key, 0], [key, 1], …: Put writes part 0 alone, Append adds the next part
// (so appending to a long history does not rewrite it). Every write is one
// IndexedDB transaction, so it is atomic, with "strict" durability: it has
// reached the disk when it returns, as DirStorage's writes have (a ratchet
// step must be stored before its message leaves).
//
// Reads are served from a copy of the store that OpenIDBStorage loads and
// every successful write updates, so Get and List never wait for
// IndexedDB. That copy is right only while one IDBStorage is the only
// writer of its database: the web client holds a Web Lock for that (one
// tab owns the device).
//
// Writes block until IndexedDB answers, which needs the browser's event
// loop to run: call them from a goroutine, never from a js.Func callback.
type IDBStorage struct {
	db js.Value

	mu    sync.Mutex // serialises writes, so the copy follows IndexedDB's order
	cache map[string][]byte
	parts map[string]int // number of parts stored under each key
}

const idbStore = "kv"

// compactParts is the number of parts beyond which OpenIDBStorage joins a
// value back into one part.
const compactParts = 64

// OpenIDBStorage opens (creating) the IndexedDB database name and loads
// its contents.
func OpenIDBStorage(name string) (*IDBStorage, error) {
	idb := js.Global().Get("indexedDB")
	if idb.IsUndefined() || idb.IsNull() {
		return nil, errors.New("this browser has no IndexedDB (a private window may disable it)")
	}
	req := idb.Call("open", name, 1)
	upgrade := js.FuncOf(func(js.Value, []js.Value) any {
		db := req.Get("result")
		if !db.Get("objectStoreNames").Call("contains", idbStore).Bool() {
			db.Call("createObjectStore", idbStore)
		}
		return nil
	})
	defer upgrade.Release()
	req.Set("onupgradeneeded", upgrade)
	res, err := await(req, "blocked")
	if err != nil {
		return nil, fmt.Errorf("open IndexedDB %s: %w", name, err)
	}
	s := &IDBStorage{db: res, cache: map[string][]byte{}, parts: map[string]int{}}
	if err := s.load(); err != nil {
		s.Close()
		return nil, fmt.Errorf("read IndexedDB %s: %w", name, err)
	}
	return s, nil
}

// load reads the whole store in one transaction, keys and values in key
// order, so the parts of a value come in sequence.
func (s *IDBStorage) load() error {
	var keys, values js.Value
	err := s.tx("readonly", func(t *txn) {
		t.then(t.store.Call("getAllKeys"), func(r js.Value) { keys = r })
		t.then(t.store.Call("getAll"), func(r js.Value) { values = r })
	})
	if err != nil {
		return err
	}
	if keys.Length() != values.Length() {
		return errors.New("keys and values differ in number")
	}
	for i := range keys.Length() {
		k := keys.Index(i).Index(0).String()
		v := values.Index(i)
		b := make([]byte, v.Get("length").Int())
		js.CopyBytesToGo(b, v)
		s.cache[k] = append(s.cache[k], b...)
		if s.cache[k] == nil {
			s.cache[k] = []byte{}
		}
		s.parts[k]++
	}
	for k, n := range s.parts {
		if n > compactParts {
			if err := s.Put(k, s.cache[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the database connection.
func (s *IDBStorage) Close() { s.db.Call("close") }

// DeleteIDBStorage deletes the IndexedDB database name with everything in
// it. Close every IDBStorage on it first, or it waits for them.
func DeleteIDBStorage(name string) error {
	_, err := await(js.Global().Get("indexedDB").Call("deleteDatabase", name), "")
	return err
}

// await waits for an IDBRequest's success or error and returns its result;
// extra, if not "", names one more event that fails it.
func await(req js.Value, extra string) (js.Value, error) {
	type answer struct {
		v   js.Value
		err error
	}
	ch := make(chan answer, 1)
	ok := js.FuncOf(func(js.Value, []js.Value) any {
		ch <- answer{v: req.Get("result")}
		return nil
	})
	fail := js.FuncOf(func(js.Value, []js.Value) any {
		ch <- answer{err: domError(req.Get("error"))}
		return nil
	})
	defer ok.Release()
	defer fail.Release()
	req.Set("onsuccess", ok)
	req.Set("onerror", fail)
	if extra != "" {
		req.Set("on"+extra, fail)
	}
	a := <-ch
	return a.v, a.err
}

func domError(e js.Value) error {
	if e.IsNull() || e.IsUndefined() {
		return errors.New("IndexedDB request failed")
	}
	return fmt.Errorf("IndexedDB: %s: %s", e.Get("name").String(), e.Get("message").String())
}

// txn is one transaction in progress: its object store and the callbacks
// to release once it has ended.
type txn struct {
	store js.Value
	funcs []js.Func
}

// then calls f with the result of req when it succeeds (a failed request
// aborts the transaction, which tx reports).
func (t *txn) then(req js.Value, f func(result js.Value)) {
	fn := js.FuncOf(func(js.Value, []js.Value) any {
		f(req.Get("result"))
		return nil
	})
	t.funcs = append(t.funcs, fn)
	req.Set("onsuccess", fn)
}

// tx runs one transaction: start issues its requests and tx returns when
// the transaction has completed or aborted.
func (s *IDBStorage) tx(mode string, start func(t *txn)) error {
	opts := js.Global().Get("Object").New()
	if mode == "readwrite" {
		opts.Set("durability", "strict")
	}
	jt := s.db.Call("transaction", idbStore, mode, opts)
	ch := make(chan error, 1)
	done := js.FuncOf(func(js.Value, []js.Value) any { ch <- nil; return nil })
	fail := js.FuncOf(func(js.Value, []js.Value) any { ch <- domError(jt.Get("error")); return nil })
	t := &txn{store: jt.Call("objectStore", idbStore), funcs: []js.Func{done, fail}}
	defer func() {
		for _, f := range t.funcs {
			f.Release()
		}
	}()
	jt.Set("oncomplete", done)
	jt.Set("onabort", fail)
	start(t)
	return <-ch
}

// partsOf is the key range of every part of key.
func partsOf(key string) js.Value {
	return js.Global().Get("IDBKeyRange").Call("bound", []any{key, 0}, []any{key, js.Global().Get("Infinity")})
}

func jsBytes(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

// Get implements Storage.
func (s *IDBStorage) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.cache[key]
	if !ok {
		return nil, ErrNoValue
	}
	return append([]byte{}, v...), nil
}

// Put implements Storage.
func (s *IDBStorage) Put(key string, value []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := jsBytes(value)
	err := s.tx("readwrite", func(t *txn) {
		// Requests of a transaction run in order: the old parts go, then
		// the new value is part 0.
		t.store.Call("delete", partsOf(key))
		t.store.Call("put", v, []any{key, 0})
	})
	if err != nil {
		return err
	}
	s.cache[key] = append([]byte{}, value...)
	s.parts[key] = 1
	return nil
}

// Append implements Storage.
func (s *IDBStorage) Append(key string, data []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := jsBytes(data)
	// Part numbers only grow (the copy knows how many there are); a Put
	// starts again from 0.
	n := s.parts[key]
	if err := s.tx("readwrite", func(t *txn) { t.store.Call("put", v, []any{key, n}) }); err != nil {
		return err
	}
	s.cache[key] = append(s.cache[key], data...) // Get hands out copies only
	s.parts[key] = n + 1
	return nil
}

// Delete implements Storage.
func (s *IDBStorage) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.tx("readwrite", func(t *txn) { t.store.Call("delete", partsOf(key)) }); err != nil {
		return err
	}
	delete(s.cache, key)
	delete(s.parts, key)
	return nil
}

// List implements Storage.
func (s *IDBStorage) List(prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.cache {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}
