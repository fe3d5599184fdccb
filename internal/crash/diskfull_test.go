package crash

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// smallDisk mounts a tmpfs of size bytes in a temporary directory and
// unmounts it when t ends. It needs root and mount(8), as on CI; where it
// cannot mount, the test fails with the reason.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("the disk-full test mounts a small tmpfs and needs root and mount(8) (uid %d): mount: %v\n%s", os.Getuid(), err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file of zeros until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			break
		}
	}
	// The last bytes a page short of the end.
	small := make([]byte, 512)
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
}

// TestDiskFull runs `sandi serve` on SQLite with its data directory on a
// small tmpfs, fills the tmpfs under a steady load of sends, and checks
// that sends then fail with 503 storage_full (never 500) while the server
// keeps running, that it recovers on its own once the filler is deleted,
// and that every acknowledged send is stored exactly once and every
// device syncs seqs 1…N.
func TestDiskFull(t *testing.T) {
	bin := buildSandi(t)
	disk := smallDisk(t, "32m")
	r := newRig(t, bin, "", filepath.Join(disk, "data"))
	r.load(60 * time.Second)
	r.waitAcks(20, 10*time.Second, "before the disk filled")

	filler := filepath.Join(disk, "filler")
	fill(t, filler)
	filled := time.Now()
	// Sends stop being acknowledged once SQLite needs a page it cannot
	// have; wait for the failures.
	for r.failures()["503 storage_full"] == 0 {
		if time.Since(filled) > 20*time.Second {
			t.Fatalf("no send refused with 503 storage_full 20 s after the disk filled (failures: %v, answers 500: %d)", r.failures(), r.codes.get(500))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !r.healthy() {
		t.Fatal("the server stopped answering /healthz on a full disk")
	}
	time.Sleep(time.Second) // a while on a full disk
	if !r.healthy() {
		t.Fatal("the server stopped answering /healthz on a full disk")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	n := r.acks()
	r.waitAcks(n+10, 30*time.Second, "after space returned")
	if st := r.ready(); st != http.StatusOK {
		t.Errorf("/readyz answered %d after space returned", st)
	}
	t.Logf("sends acknowledged again %v after space returned; answers 503: %d, 500: %d; send failures: %v",
		time.Since(back).Round(time.Millisecond), r.codes.get(503), r.codes.get(500), r.failures())
	if c := r.codes.get(http.StatusInternalServerError); c > 0 {
		t.Errorf("%d requests got 500 on a full disk; want 503", c)
	}
	r.finish()
	r.srv.kill() // fails if the process ended on its own
}
