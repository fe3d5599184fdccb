//go:build linux

package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal: the test writes what is typed to
// master; slave is the terminal a command reads.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); errno != 0 {
			t.Fatalf("ioctl %#x: %v", req, errno)
		}
	}
	var unlock int32
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	var n uint32
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// typeAtPrompts runs sandi with a terminal as standard input and, at each
// prompt it writes on stderr, types the next answer; it returns stdout,
// stderr and the exit status.
func typeAtPrompts(t *testing.T, args []string, prompts, answers []string) (string, string, int) {
	t.Helper()
	return typeAtPromptsWith(t, args, prompts, answers, nil)
}

// typeAtPromptsWith is typeAtPrompts calling before(slave) before it
// types each answer.
func typeAtPromptsWith(t *testing.T, args []string, prompts, answers []string, before func(*os.File)) (string, string, int) {
	t.Helper()
	master, slave := openPTY(t)
	go io.Copy(io.Discard, master) // whatever the terminal shows
	cmd := exec.Command(sandiBinary(t), args...)
	cmd.Env = childEnv()
	cmd.Stdin = slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	var out strings.Builder
	cmd.Stdout = &out
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stderr := bufio.NewReader(errp)
	var seen strings.Builder
	for i, p := range prompts {
		for !strings.HasSuffix(seen.String(), p) {
			b, err := stderr.ReadByte()
			if err != nil {
				cmd.Wait()
				t.Fatalf("waiting for the prompt %q: %v; stderr %q", p, err, seen.String())
			}
			seen.WriteByte(b)
		}
		if before != nil {
			before(slave)
		}
		if _, err := io.WriteString(master, answers[i]+"\r"); err != nil {
			t.Fatal(err)
		}
	}
	rest, _ := io.ReadAll(stderr)
	seen.Write(rest)
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), seen.String(), code
}

// TestCLIRegisterOnTerminal: on a terminal, register asks for the password
// twice; two different answers register nothing (a sentence, exit status
// 2), the same answer twice registers with it.
func TestCLIRegisterOnTerminal(t *testing.T) {
	base, _ := cliWorld(t)
	home := filepath.Join(t.TempDir(), "alice")
	args := []string{"--home", home, "--server", base, "register", "alice"}
	prompts := []string{"password: ", "password again: "}
	_, errs, code := typeAtPrompts(t, args, prompts, []string{"password of alice", "password of alicf"})
	if want := "sandi: the two passwords differ; nothing was registered: run the command again\n"; code != 2 || !strings.HasSuffix(errs, want) {
		t.Fatalf("two different passwords: exit %d, stderr %q; want exit 2 and %q", code, errs, want)
	}
	if _, errs, code := cliRun(t, base, home, "", "whoami"); code != 1 || !strings.Contains(errs, "no account") {
		t.Fatalf("whoami after the refused register: %d %q", code, errs)
	}
	out, errs, code := typeAtPrompts(t, args, prompts, []string{"password of alice", "password of alice"})
	if code != 0 || !strings.Contains(out, "registered alice") {
		t.Fatalf("the same password twice: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	cliOK(t, base, filepath.Join(t.TempDir(), "alice2"), "password of alice\n", "login", "alice", "--password-stdin")
}

// TestCLIRestoreOnTerminal: on a terminal, restore asks for the recovery
// key with the terminal's echo off, as for a password (someone looking at
// the screen, or its scrollback, must not learn the key), and restores.
func TestCLIRestoreOnTerminal(t *testing.T) {
	base, homes := cliWorld(t, "alice")
	var en struct{ RecoveryKey string }
	if err := json.Unmarshal([]byte(cliOK(t, base, homes["alice"], "", "--json", "backup", "enable")), &en); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	cliOK(t, base, fresh, "password of alice\n", "login", "alice", "--password-stdin")
	echoOff := func(slave *os.File) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var tio syscall.Termios
			if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, slave.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio))); errno != 0 {
				t.Fatalf("TCGETS: %v", errno)
			}
			if tio.Lflag&syscall.ECHO == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the terminal still echoes what is typed at the recovery key prompt")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	out, errs, code := typeAtPromptsWith(t, []string{"--home", fresh, "--server", base, "restore"}, []string{"recovery key: "}, []string{en.RecoveryKey}, echoOff)
	if code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("restore on a terminal: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if a, b := identityLine(t, base, homes["alice"]), identityLine(t, base, fresh); a != b {
		t.Fatalf("restored %q, want %q", b, a)
	}
}
