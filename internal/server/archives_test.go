package server_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"sandi.dev/internal/blob"
	"sandi.dev/internal/server"
)

type archiveAnswer struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Size      int64  `json:"size"`
	CreatedAt int64  `json:"createdAt"`
}

type archiveList struct {
	Archives []archiveAnswer `json:"archives"`
}

// putArchive stores data as an archive of kind.
func (d *device) putArchive(kind string, data []byte) archiveAnswer {
	t := d.e.t
	t.Helper()
	r := d.e.raw(nil, d.token, "PUT", "/api/archives/"+kind, data)
	var a archiveAnswer
	if r.status != 201 || json.Unmarshal(r.body, &a) != nil {
		t.Fatalf("%s: put %s archive: %d %s", d.name, kind, r.status, r.body)
	}
	return a
}

// TestArchives: an account's archive is served back byte for byte (over
// several parts) to the account's devices, a device that only signed in
// with the password included (a restore starts there); another account
// sees 404 on every route; a second backup replaces the first, whose
// object is gone; a device without keys cannot store or delete.
func TestArchives(t *testing.T) {
	forEachDB(t, server.Config{}, func(t *testing.T, e *env) {
		alice, mallory := e.register("alice"), e.register("mallory")
		keyless := e.login("alice", nil)
		big := randomBytes(blob.PartSize + 1000)
		first := alice.putArchive("backup", randomBytes(300))
		backup := alice.putArchive("backup", big)
		transfer := alice.putArchive("transfer", randomBytes(10))
		if backup.Size != int64(len(big)) || backup.Kind != "backup" || transfer.Kind != "transfer" {
			t.Fatalf("answers %+v %+v", backup, transfer)
		}
		for _, d := range []*device{alice, keyless} {
			r := e.raw(nil, d.token, "GET", "/api/archives/"+backup.ID, nil)
			if r.status != 200 || !bytes.Equal(r.body, big) {
				t.Fatalf("%s: GET the backup: %d, %d bytes", d.name, r.status, len(r.body))
			}
			var l archiveList
			d.must("GET", "/api/archives", nil, &l)
			ids := map[string]bool{}
			for _, a := range l.Archives {
				ids[a.ID] = true
			}
			if len(l.Archives) != 2 || !ids[backup.ID] || !ids[transfer.ID] {
				t.Fatalf("%s: list %+v, want the second backup and the transfer", d.name, l.Archives)
			}
		}
		// The replaced backup is gone, row and object.
		e.raw(nil, alice.token, "GET", "/api/archives/"+first.ID, nil).wantProblem(t, 404, server.CodeNotFound)
		// Another account: nothing, and nothing it can delete.
		var l archiveList
		mallory.must("GET", "/api/archives", nil, &l)
		if len(l.Archives) != 0 {
			t.Fatalf("mallory lists %+v", l.Archives)
		}
		for _, id := range []string{backup.ID, transfer.ID} {
			e.raw(nil, mallory.token, "GET", "/api/archives/"+id, nil).wantProblem(t, 404, server.CodeNotFound)
			wantCode(t, mallory.do("DELETE", "/api/archives/"+id, nil, nil), 404, server.CodeNotFound)
			wantCode(t, keyless.do("DELETE", "/api/archives/"+id, nil, nil), 403, server.CodeKeysRequired)
		}
		e.raw(nil, keyless.token, "PUT", "/api/archives/backup", []byte("x")).wantProblem(t, 403, server.CodeKeysRequired)
		// Bad input changes nothing.
		e.raw(nil, alice.token, "PUT", "/api/archives/other", []byte("x")).wantProblem(t, 404, server.CodeNotFound)
		e.raw(nil, alice.token, "PUT", "/api/archives/backup", []byte{}).wantProblem(t, 400, server.CodeBadRequest)
		e.raw(nil, alice.token, "GET", "/api/archives/not-an-id", nil).wantProblem(t, 404, server.CodeNotFound)
		alice.must("DELETE", "/api/archives/"+backup.ID, nil, nil)
		e.raw(nil, alice.token, "GET", "/api/archives/"+backup.ID, nil).wantProblem(t, 404, server.CodeNotFound)
		alice.must("GET", "/api/archives", nil, &l)
		if len(l.Archives) != 1 || l.Archives[0].ID != transfer.ID {
			t.Fatalf("after delete: %+v", l.Archives)
		}
	})
}

// TestArchiveLimits: an account that floods the archive routes is held to
// the limits: an archive larger than MaxBlobSize is refused before it is
// stored, uploads past the blob rate are refused, a stream of transfers
// keeps only the newest KeepTransfers (the others are gone, row and
// object), and a transfer is no longer served once TransferTTL has passed.
func TestArchiveLimits(t *testing.T) {
	cfg := server.Config{MaxBlobSize: 3000, BlobUploadsPerMinute: server.KeepTransfers + 1}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		alice := e.register("alice")
		e.raw(nil, alice.token, "PUT", "/api/archives/backup", randomBytes(3001)).wantProblem(t, 413, server.CodeBlobTooLarge)
		var sent []archiveAnswer
		for range server.KeepTransfers + 1 {
			sent = append(sent, alice.putArchive("transfer", randomBytes(3000)))
			e.clock.now = e.clock.now.Add(time.Second)
		}
		e.raw(nil, alice.token, "PUT", "/api/archives/backup", randomBytes(10)).wantProblem(t, 429, server.CodeRateLimited)
		var l archiveList
		alice.must("GET", "/api/archives", nil, &l)
		kept := map[string]bool{}
		for _, a := range l.Archives {
			kept[a.ID] = true
		}
		if len(l.Archives) != server.KeepTransfers || kept[sent[0].ID] {
			t.Fatalf("after %d transfers: list %+v, want all but the first", len(sent), l.Archives)
		}
		e.raw(nil, alice.token, "GET", "/api/archives/"+sent[0].ID, nil).wantProblem(t, 404, server.CodeNotFound)
		last := sent[len(sent)-1]
		if r := e.raw(nil, alice.token, "GET", "/api/archives/"+last.ID, nil); r.status != 200 {
			t.Fatalf("the newest transfer: %d %s", r.status, r.body)
		}
		e.clock.now = e.clock.now.Add(server.TransferTTL)
		e.raw(nil, alice.token, "GET", "/api/archives/"+last.ID, nil).wantProblem(t, 404, server.CodeNotFound)
	})
}

// TestBackupSegments: an abusive client cannot grow a backup without
// bound: a segment needs a backup (404), a backup holds at most
// MaxBackupSegments segments and BackupTotalBlobs of the largest blobs
// (413 quota_exceeded, nothing stored); a whole backup replaces the base
// and every segment, rows and objects.
func TestBackupSegments(t *testing.T) {
	cfg := server.Config{MaxBlobSize: 1000, BlobUploadsPerMinute: 1000}
	forEachDB(t, cfg, func(t *testing.T, e *env) {
		alice := e.register("alice")
		e.raw(nil, alice.token, "PUT", "/api/archives/segment", randomBytes(10)).wantProblem(t, 404, server.CodeNotFound)
		base := alice.putArchive("backup", randomBytes(1000))
		big := []archiveAnswer{alice.putArchive("segment", randomBytes(1000)), alice.putArchive("segment", randomBytes(999))}
		if big[0].Kind != "backup" {
			t.Fatalf("a segment is listed as %q, want a part of the backup", big[0].Kind)
		}
		e.raw(nil, alice.token, "PUT", "/api/archives/segment", randomBytes(2)).wantProblem(t, 413, server.CodeQuotaExceeded)
		list := func() map[string]bool {
			var l archiveList
			alice.must("GET", "/api/archives", nil, &l)
			ids := map[string]bool{}
			for _, a := range l.Archives {
				ids[a.ID] = true
			}
			return ids
		}
		if ids := list(); len(ids) != 3 || !ids[base.ID] || !ids[big[1].ID] {
			t.Fatalf("after a refused segment: %v", ids)
		}
		base = alice.putArchive("backup", randomBytes(10))
		for _, a := range big {
			e.raw(nil, alice.token, "GET", "/api/archives/"+a.ID, nil).wantProblem(t, 404, server.CodeNotFound)
		}
		for range server.MaxBackupSegments {
			alice.putArchive("segment", randomBytes(1))
		}
		e.raw(nil, alice.token, "PUT", "/api/archives/segment", randomBytes(1)).wantProblem(t, 413, server.CodeQuotaExceeded)
		if ids := list(); len(ids) != 1+server.MaxBackupSegments || !ids[base.ID] {
			t.Fatalf("%d parts listed (base kept: %v), want the base and %d segments", len(ids), ids[base.ID], server.MaxBackupSegments)
		}
		alice.putArchive("backup", randomBytes(10))
		if ids := list(); len(ids) != 1 {
			t.Fatalf("a whole backup leaves %d parts, want 1", len(ids))
		}
	})
}
