package load

import (
	"fmt"
	"os"
	"time"
)

// diskWrites is how many synced writes diskSync times.
const diskWrites = 200

// diskSync times n synced 4 KiB writes to one place of a new file in dir,
// the way a SQLite commit ends: a write, then the data synced (datasync).
// On a shared virtual disk the flush time is most of a commit's time and
// varies with the host's load, so the report gives it beside the live
// phase it came before: runs on different days are compared on it.
func diskSync(dir string, n int) (Percentiles, error) {
	f, err := os.CreateTemp(dir, "sandi-load-disk-")
	if err != nil {
		return Percentiles{}, fmt.Errorf("disk probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	times := make([]time.Duration, 0, n)
	for i := range n {
		buf[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(buf, 0); err != nil {
			return Percentiles{}, fmt.Errorf("disk probe: %w", err)
		}
		if err := datasync(f); err != nil {
			return Percentiles{}, fmt.Errorf("disk probe: %w", err)
		}
		times = append(times, time.Since(t0))
	}
	return percentiles(times), nil
}
