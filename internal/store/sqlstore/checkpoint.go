package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// checkpointer copies the SQLite WAL back into the database file from a
// connection of its own, so that the writer's commits rarely have to.
// SQLite checkpoints inside the commit that takes the WAL over 1,000
// pages (wal_autocheckpoint): that commit, and every send queued behind
// it, then waits for up to a thousand page writes and a sync of the
// database file. Here, a moment after each write, this goroutine runs
// PRAGMA wal_checkpoint(PASSIVE), which copies what it can without
// waiting for, or blocking, the writer or the readers; when the writer's
// own checkpoint comes due, only the pages of the last moment are left to
// copy.
//
// The writer's checkpoint is kept: it runs between two of its
// transactions, so it can finish the copy, and the next transaction then
// starts the WAL over from its beginning. A checkpoint that runs beside a
// writer that never pauses always finds new pages behind it, and the WAL
// would grow for as long as the load lasts.
//
// Durability is unchanged: every commit still syncs the WAL, and a
// checkpoint syncs the WAL before copying and the database file after
// (synchronous=FULL).
type checkpointer struct {
	db    *sql.DB
	every time.Duration
	kick  chan struct{}
	quit  chan struct{}
	done  sync.WaitGroup
	runs  atomic.Int64 // checkpoints run, for tests
}

// checkpointEvery is how long a checkpoint waits after a write: writes
// within it are copied by one checkpoint, a page written many times once.
const checkpointEvery = 50 * time.Millisecond

func newCheckpointer(db *sql.DB, every time.Duration) *checkpointer {
	c := &checkpointer{db: db, every: every, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	c.done.Add(1)
	go c.loop()
	return c
}

// wrote tells the checkpointer that a transaction has committed.
func (c *checkpointer) wrote() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) loop() {
	defer c.done.Done()
	for {
		select {
		case <-c.kick:
		case <-c.quit:
			return
		}
		select {
		case <-time.After(c.every):
		case <-c.quit:
			return
		}
		// An error (the disk, a closed database) leaves the WAL to grow
		// until the next attempt, or to the checkpoint SQLite runs when
		// the last connection closes; nothing is lost either way.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		cancel()
		c.runs.Add(1)
	}
}

// close stops the checkpointer and closes its connection.
func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	close(c.quit)
	c.done.Wait()
	return c.db.Close()
}
