package sqlstore

import (
	"context"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"sandi.dev/internal/store"
)

// A send alone in its batch whose Check is still running (the server
// verifying the envelope's signature while the store writes) takes the
// one round trip of pgFastSend in an explicit transaction whose end is
// sent only once the check has answered:
//
//	BEGIN; lock the conversations; pgFastSend   (sent at once)
//	  … Check() …
//	COMMIT, or ROLLBACK if the check failed; Sync
//
// PostgreSQL runs the statements while the check runs; the transaction
// commits (and the send is acknowledged) only after the check passed, and
// a send whose check fails is rolled back: nothing of it is stored, its
// answer is the check's error. The statements and the commit still go in
// one round trip when the check ends before PostgreSQL has run them,
// which is the usual case (a signature takes less than the statements).
//
// A send that pgFastSend does not write (it needs planSend's decision,
// or its client message id is stored) waits for the check and takes the
// planned path, as any batch with checks does.

// sendPostgresChecked is Send on PostgreSQL of one send with a Check.
func (s *Store) sendPostgresChecked(ctx context.Context, m store.Send) ([]store.SendResult, error) {
	batch := []store.Send{m}
	res, cerr, err := s.sendPostgresGated(ctx, batch)
	if cerr != nil {
		return []store.SendResult{{Err: cerr}}, nil
	}
	if err == nil && res != nil {
		s.fastSends.Add(1)
		s.checkedSends.Add(1)
		return res, nil
	}
	// Not written (or, the connection lost, perhaps written: the look-up
	// answers what was stored): the check decides first, then the
	// planned path.
	if cerr := m.Check(); cerr != nil {
		return []store.SendResult{{Err: cerr}}, nil
	}
	lookup := errors.Is(err, errLookUp) || connLost(err) && ctx.Err() == nil
	if err != nil && !lookup && !s.counterRetired(err) && (!s.d.retryable(err) || ctx.Err() != nil) {
		return nil, wrapErr("send", err)
	}
	return s.sendPostgres(ctx, batch, true, lookup)
}

// sendPostgresGated runs the gated one round trip (see the top of this
// file) for a batch whose every item has a Check. It returns the results
// if it wrote the batch; nil results, having written nothing, if an item
// needs planSend; cerr, having written nothing, if a check failed; and
// errLookUp if a client message id is already stored.
func (s *Store) sendPostgresGated(ctx context.Context, batch []store.Send) (res []store.SendResult, cerr error, err error) {
	lockArgs, fastArgs := pgFastArgs(batch)
	conn, err := s.sends.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		// Prepared once per connection (Prepare answers from the
		// connection's own list afterwards); planned once, as every
		// statement of the send pool (force_generic_plan).
		lock, err := pc.Prepare(ctx, pgLockConversations, pgLockConversations)
		if err != nil {
			return err
		}
		q := s.pgFastSendQuery()
		fast, err := pc.Prepare(ctx, q, q)
		if err != nil {
			return err
		}
		lockVals, lockFmts, err := pgEncode(pc, lock, lockArgs)
		if err != nil {
			return err
		}
		fastVals, fastFmts, err := pgEncode(pc, fast, fastArgs)
		if err != nil {
			return err
		}
		binRows := []int16{pgx.BinaryFormatCode}

		pl := pc.PgConn().StartPipeline(ctx)
		pl.SendQueryParams("BEGIN", nil, nil, nil, nil)
		pl.SendQueryStatement(lock, lockVals, lockFmts, nil)
		pl.SendQueryStatement(fast, fastVals, fastFmts, binRows)
		err = pl.Flush()
		// Every check is awaited, even when the statements could not be
		// sent: the caller may not write an item before its check.
		for _, m := range batch {
			if e := m.Check(); e != nil && cerr == nil {
				cerr = e
			}
		}
		if err != nil {
			return errors.Join(err, pl.Close(), driver.ErrBadConn)
		}
		end := "COMMIT"
		if cerr != nil {
			end = "ROLLBACK"
		}
		pl.SendQueryParams(end, nil, nil, nil, nil)
		pl.SendPipelineSync()
		if err := pl.Flush(); err != nil {
			return errors.Join(err, pl.Close(), driver.ErrBadConn)
		}
		err = func() error {
			if err := pipelineExec(pl, "BEGIN"); err != nil {
				return err
			}
			if err := pipelineExec(pl, ""); err != nil { // the locks
				return err
			}
			rr, err := pipelineRows(pl)
			if err != nil {
				return err
			}
			for rr.NextRow() {
				v := rr.Values()
				if len(v) != 3 || len(v[0]) != 8 || len(v[1]) != 8 || len(v[2]) != 8 {
					rr.Close()
					return errors.New("send: a row of the wrong shape")
				}
				if res == nil {
					res = make([]store.SendResult, len(batch))
				}
				ord, seq, base := int64(binary.BigEndian.Uint64(v[0])), int64(binary.BigEndian.Uint64(v[1])), int64(binary.BigEndian.Uint64(v[2]))
				if err := pgFastResult(res, batch, ord, seq, base); err != nil {
					rr.Close()
					return err
				}
			}
			if _, err := rr.Close(); err != nil {
				return err
			}
			return pipelineExec(pl, end)
		}()
		if closeErr := pl.Close(); err == nil {
			err = closeErr
		}
		if pc.PgConn().TxStatus() != 'I' {
			// A statement failed: the transaction is open and aborted.
			if _, rerr := pc.Exec(ctx, "ROLLBACK"); rerr != nil || pc.PgConn().TxStatus() != 'I' {
				return errors.Join(err, errors.New("send: a transaction is left open"), driver.ErrBadConn)
			}
		}
		return err
	})
	switch {
	case cerr != nil:
		// Rolled back, or never committed: whatever err says, nothing
		// was stored.
		return nil, cerr, nil
	case err != nil:
		return nil, nil, pgFastErr(err)
	}
	if err := pgFastComplete(res); err != nil {
		return nil, nil, err
	}
	return res, nil, nil
}

// pipelineRows reads the next result of a pipeline, a statement's.
func pipelineRows(pl *pgconn.Pipeline) (*pgconn.ResultReader, error) {
	r, err := pl.GetResults()
	if err != nil {
		return nil, err
	}
	rr, ok := r.(*pgconn.ResultReader)
	if !ok {
		return nil, fmt.Errorf("send: pipeline answered %T", r)
	}
	return rr, nil
}

// pipelineExec reads the next result of a pipeline, a statement without
// rows, and checks its tag when want is not empty.
func pipelineExec(pl *pgconn.Pipeline, want string) error {
	rr, err := pipelineRows(pl)
	if err != nil {
		return err
	}
	tag, err := rr.Close()
	if err == nil && want != "" && tag.String() != want {
		err = fmt.Errorf("send: %s answered %q", want, tag.String())
	}
	return err
}

// pgEncode encodes a prepared statement's arguments as pgx would.
func pgEncode(pc *pgx.Conn, sd *pgconn.StatementDescription, args []any) ([][]byte, []int16, error) {
	if len(args) != len(sd.ParamOIDs) {
		return nil, nil, fmt.Errorf("send: %d arguments for %d parameters", len(args), len(sd.ParamOIDs))
	}
	m := pc.TypeMap()
	vals, fmts := make([][]byte, len(args)), make([]int16, len(args))
	for i, a := range args {
		oid := sd.ParamOIDs[i]
		f := m.FormatCodeForOID(oid)
		v, err := m.Encode(oid, f, a, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("send: argument %d: %w", i+1, err)
		}
		vals[i], fmts[i] = v, f
	}
	return vals, fmts, nil
}
