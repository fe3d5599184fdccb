package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAttachmentTransfer measures an attachment end to end on
// loopback with real processes: `sandi send --file` (encrypt + upload) and
// `sandi save` (download + digest + decrypt) against `sandi serve` with
// its file-system blob store, reporting each direction's throughput in
// MB/s of plaintext and the peak resident set size of the client
// processes and of the server (over its whole run, and during the
// transfers only), and the bytes `save` wrote to storage. The file is SANDI_BENCH_ATTACH_MIB MiB
// (default 256; the figures in docs/performance.md use 1024):
//
//	SANDI_BENCH_ATTACH_MIB=1024 go test -run '^$' -bench AttachmentTransfer -benchtime 1x ./cmd/sandi
func BenchmarkAttachmentTransfer(b *testing.B) {
	mib := 256
	if v, err := strconv.Atoi(os.Getenv("SANDI_BENCH_ATTACH_MIB")); err == nil && v > 0 {
		mib = v
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "sandi")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	// The file: random bytes, which do not compress.
	file := filepath.Join(dir, "big.bin")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.NewChaCha8([32]byte{1})
	if _, err := io.CopyN(w, rng, int64(mib)<<20); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()

	addr := benchAddr(b)
	base := "http://" + addr
	srv := exec.Command(bin, "serve", "--addr", addr, "--data", filepath.Join(dir, "data"), "--max-blob", strconv.Itoa(mib+16)+"MiB", "--blob-quota", "0")
	srv.Env = childEnv()
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the server did not start")
		}
	}
	// run runs one client command and returns its stdout, wall time, peak
	// RSS and the bytes it wrote to storage (the kernel's count of its
	// block writes: the data it dirtied in files).
	run := func(home string, args ...string) (string, time.Duration, int64, int64) {
		cmd := exec.Command(bin, append([]string{"--home", filepath.Join(dir, home), "--server", base}, args...)...)
		cmd.Env = childEnv()
		cmd.Stdin = strings.NewReader("password of " + home + "\n")
		start := time.Now()
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("sandi %s: %v", strings.Join(args, " "), err)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return string(out), time.Since(start), ru.Maxrss << 10, ru.Oublock * 512
	}
	run("alice", "register", "alice", "--password-stdin")
	run("bob", "register", "bob", "--password-stdin")
	out, _, _, _ := run("alice", "--json", "new", "bob")
	var conv struct{ ID string }
	if err := json.Unmarshal([]byte(out), &conv); err != nil {
		b.Fatal(err)
	}
	// The server's peak so far is its start and the two registrations
	// (each an Argon2id hash); the transfers' own peak is read after the
	// kernel's count is reset (clear_refs 5: the peak becomes the current
	// resident set).
	setupRSS := peakRSS(b, srv.Process.Pid)
	resetPeak := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", srv.Process.Pid), []byte("5"), 0)
	size := float64(int64(mib) << 20)
	var up, down time.Duration
	var upRSS, downRSS, written int64
	for i := range b.N {
		_, d, rss, _ := run("alice", "send", conv.ID, "--file", file)
		up, upRSS = up+d, max(upRSS, rss)
		out, _, _, _ := run("bob", "--json", "sync")
		var msg struct{ Attachments []struct{ ID string } }
		if err := json.Unmarshal([]byte(out), &msg); err != nil || len(msg.Attachments) != 1 {
			b.Fatalf("sync: %v %q", err, out)
		}
		dest := filepath.Join(dir, fmt.Sprintf("saved-%d.bin", i))
		_, d, rss, w := run("bob", "save", conv.ID, msg.Attachments[0].ID, "--out", dest)
		down, downRSS, written = down+d, max(downRSS, rss), written+w
		os.Remove(dest)
	}
	b.ReportMetric(size*float64(b.N)/up.Seconds()/1e6, "upload-MB/s")
	b.ReportMetric(size*float64(b.N)/down.Seconds()/1e6, "download-MB/s")
	b.ReportMetric(float64(upRSS)/(1<<20), "send-RSS-MiB")
	b.ReportMetric(float64(downRSS)/(1<<20), "save-RSS-MiB")
	b.ReportMetric(float64(written)/float64(b.N)/(1<<20), "save-written-MiB")
	peak := peakRSS(b, srv.Process.Pid)
	b.ReportMetric(float64(max(setupRSS, peak))/(1<<20), "server-RSS-MiB")
	if resetPeak == nil {
		b.ReportMetric(float64(peak)/(1<<20), "server-transfer-RSS-MiB")
	}
}

// peakRSS reads a running process's peak resident set size (VmHWM).
func peakRSS(b *testing.B, pid int) int64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

func benchAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
