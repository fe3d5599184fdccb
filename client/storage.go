package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Storage is where a client keeps its device's state: keys, membership
// chains, epoch ratchets, the sync cursor and the decrypted history. Keys
// are slash-separated names of [a-z0-9/._-]. The CLI uses a directory
// (DirStorage); the web client uses IndexedDB.
type Storage interface {
	// Get returns the value stored under key, or ErrNoValue.
	Get(key string) ([]byte, error)
	// Put stores value under key durably, replacing any value.
	Put(key string, value []byte) error
	// Append adds data at the end of the value under key (creating it).
	Append(key string, data []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(key string) error
	// List returns the keys that start with prefix, sorted.
	List(prefix string) ([]string, error)
}

// ErrNoValue is returned by Storage.Get for a key that holds nothing.
var ErrNoValue = errors.New("no value stored")

// DirStorage keeps each key in a file under a directory that only its
// owner may read (0700; files 0600). Writes go to a temporary file that is
// synced and renamed over the old one, so a crash leaves the old value or
// the new one, never a mix. Private keys are protected at rest by these
// file permissions only (docs/operations.md says so).
//
// A DirStorage holds the directory's lock from NewDirStorage to Close: one
// process at a time uses a device's state (see LockedError).
type DirStorage struct {
	dir  string
	lock *dirLock
}

// NewDirStorage opens (creating) a state directory and takes its lock. A
// directory that another process holds is a *LockedError (wrapping
// ErrLocked) naming the directory and, where known, that process's id. Call
// Close (or Client.Close) to release the lock; it is released when the
// process ends in any case.
func NewDirStorage(dir string) (*DirStorage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	l, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	return &DirStorage{dir: dir, lock: l}, nil
}

// Close releases the directory's lock. The storage must not be used after.
func (s *DirStorage) Close() error {
	err := s.lock.release()
	s.lock = nil
	return err
}

func validKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "..") {
		return fmt.Errorf("storage: bad key %q", key)
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-", r)) {
			return fmt.Errorf("storage: bad key %q", key)
		}
	}
	return nil
}

func (s *DirStorage) path(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// Get implements Storage.
func (s *DirStorage) Get(key string) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoValue
	}
	return b, err
}

// Put implements Storage.
func (s *DirStorage) Put(key string, value []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(value); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Append implements Storage.
func (s *DirStorage) Append(key string, data []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Delete implements Storage.
func (s *DirStorage) Delete(key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// List implements Storage.
func (s *DirStorage) List(prefix string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") || strings.HasPrefix(d.Name(), ".lock") {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		k := filepath.ToSlash(rel)
		if strings.HasPrefix(k, prefix) && validKey(k) == nil {
			keys = append(keys, k)
		}
		return nil
	})
	sort.Strings(keys)
	return keys, err
}

// MemStorage is an in-memory Storage (tests; a browser tab before it has
// IndexedDB).
type MemStorage struct{ m map[string][]byte }

// NewMemStorage returns an empty MemStorage.
func NewMemStorage() *MemStorage { return &MemStorage{m: map[string][]byte{}} }

// Get implements Storage.
func (s *MemStorage) Get(key string) ([]byte, error) {
	v, ok := s.m[key]
	if !ok {
		return nil, ErrNoValue
	}
	return append([]byte(nil), v...), nil
}

// Put implements Storage.
func (s *MemStorage) Put(key string, value []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	s.m[key] = append([]byte(nil), value...)
	return nil
}

// Append implements Storage.
func (s *MemStorage) Append(key string, data []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	s.m[key] = append(s.m[key], data...)
	return nil
}

// Delete implements Storage.
func (s *MemStorage) Delete(key string) error { delete(s.m, key); return nil }

// List implements Storage.
func (s *MemStorage) List(prefix string) ([]string, error) {
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}
