//go:build !js

package client_test

import (
	"context"
	"slices"
	"time"

	"sandi.dev/client"
)

// Operations of the property test on archives (protocol.md §14).

// historyOf is d's local history of every conversation, as texts.
func (w *world) historyOf(d *pDevice) map[string][]string {
	out := map[string][]string{}
	for _, cv := range w.convs {
		h, err := d.c.History(cv.id)
		if err != nil {
			w.fail("%s: history: %v", d.name, err)
		}
		for _, m := range h {
			if m.Type == client.ContentText {
				out[cv.id.String()] = append(out[cv.id.String()], m.Sender+": "+m.Text)
			}
		}
	}
	return out
}

// sameHistory fails unless the new device holds, in order, every message
// the source held when the archive was made (and maybe more: those the
// import caught up with, which the source had not synced yet).
func (w *world) sameHistory(src map[string][]string, d *pDevice) {
	got := w.historyOf(d)
	for conv, want := range src {
		g, i := got[conv], 0
		for _, m := range g {
			if i < len(want) && m == want[i] {
				i++
			}
		}
		if i != len(want) {
			w.fail("%s: history of %s is %v, which lacks the archive's %v in order", d.name, conv, g, want)
		}
	}
}

// linkTransfer links a new device of user with the approver's whole
// history transferred.
func (w *world) linkTransfer(user int) {
	ctx := context.Background()
	i := slices.IndexFunc(w.devicesOf(user), func(d *pDevice) bool { return d.online && !d.removed })
	if i < 0 {
		return
	}
	approver := w.devicesOf(user)[i]
	src := w.historyOf(approver)
	d := w.newDevice(user)
	if err := d.c.Login(ctx, w.users[user], "password "+w.users[user]); err != nil {
		w.fail("login: %v", err)
	}
	code, err := d.c.StartLink(ctx)
	if err != nil {
		w.fail("start link: %v", err)
	}
	if _, err := approver.c.ApproveLinkWith(ctx, code, client.LinkHistory{Transfer: true}); err != nil {
		w.fail("approve link with history: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := d.c.WaitLink(wctx, 10*time.Millisecond); err != nil {
		w.fail("wait link with history: %v", err)
	}
	w.sameHistory(src, d)
	w.devices = append(w.devices, d)
	w.ops["link with history"]++
}

// restoreBackup has an online device of a user with backups on (turned on
// now if needed, and a message sent after that first, whole backup) back
// up what changed since its last backup, as a segment, and, while the
// user has fewer than 3 devices, a new device of the user restore from
// it.
func (w *world) restoreBackup(user int) {
	ctx := context.Background()
	i := slices.IndexFunc(w.devicesOf(user), func(d *pDevice) bool { return d.online && !d.removed })
	if i < 0 {
		return
	}
	src := w.devicesOf(user)[i]
	if src.recovery == "" {
		key, err := src.c.EnableBackup(ctx)
		if err != nil {
			w.fail("%s: enable backup: %v", src.name, err)
		}
		src.recovery = key.String()
		if i := slices.IndexFunc(w.convs, func(cv *pConv) bool { return cv.members[user] }); i >= 0 {
			w.send(w.convs[i], src)
		}
	}
	if err := src.c.BackupNow(ctx); err != nil {
		w.fail("%s: backup now: %v", src.name, err)
	}
	if len(w.devicesOf(user)) >= 3 {
		w.ops["backup"]++
		return
	}
	hist := w.historyOf(src)
	d := w.newDevice(user)
	if err := d.c.Login(ctx, w.users[user], "password "+w.users[user]); err != nil {
		w.fail("login: %v", err)
	}
	if err := d.c.Restore(ctx, src.recovery); err != nil {
		w.fail("%s: restore: %v", d.name, err)
	}
	w.sameHistory(hist, d)
	w.devices = append(w.devices, d)
	w.ops["restore from backup"]++
}
