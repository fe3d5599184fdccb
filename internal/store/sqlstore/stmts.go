package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// maxStmts bounds a stmtCache. Queries are constant text apart from the
// multi-row statements, whose text depends on the row count (at most
// 200), so a few hundred entries hold every statement the store runs;
// beyond the bound a query simply runs unprepared.
const maxStmts = 1024

// stmtCache holds statements prepared once on a *sql.DB, by query text.
// database/sql prepares a cached statement again on each connection it
// runs on, once, and keeps it there. A nil *stmtCache caches nothing.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt)}
}

// lookup returns the cached statement for q, or nil.
func (c *stmtCache) lookup(q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[q]
}

// get returns q prepared, preparing and caching it on first use; nil when
// the cache is nil, full or the statement does not prepare (the caller
// then runs the text, which reports the error).
func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if st := c.lookup(q); st != nil {
		return st
	}
	c.prepare(ctx, []string{q})
	return c.lookup(q)
}

// prepare prepares and caches the queries not cached yet. It needs a free
// connection of the pool; on the SQLite writer it therefore runs after the
// transaction that used the queries has ended.
func (c *stmtCache) prepare(ctx context.Context, qs []string) {
	if c == nil {
		return
	}
	for _, q := range qs {
		c.mu.Lock()
		_, have := c.m[q]
		full := len(c.m) >= maxStmts
		c.mu.Unlock()
		if have || full {
			continue
		}
		st, err := c.db.PrepareContext(context.WithoutCancel(ctx), q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, have := c.m[q]; have || len(c.m) >= maxStmts {
			st.Close()
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
}

// close closes the cached statements.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}
