package main

import (
	"crypto/subtle"
	"fmt"
	"os"

	"golang.org/x/term"
)

// terminalIn returns standard input when it is a terminal.
func (e *cli) terminalIn() (*os.File, bool) {
	f, ok := e.stdin.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}

// askPassword asks for a password on the terminal f, without echoing it.
func askPassword(e *cli, f *os.File, prompt string) (string, error) {
	return askHidden(e, f, prompt, "no password given")
}

// askHidden asks for a secret on the terminal f, without echoing it; an
// empty answer is a usage error saying empty.
func askHidden(e *cli, f *os.File, prompt, empty string) (string, error) {
	fmt.Fprint(e.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", usageError{empty}
	}
	return string(b), nil
}

// readNewPassword reads the password of a new account: on a terminal it
// asks twice and refuses two different answers (a typing mistake would
// otherwise lock the account out); otherwise it reads the first line of
// standard input.
func readNewPassword(e *cli) (string, error) {
	f, ok := e.terminalIn()
	if !ok {
		return readPassword(e)
	}
	pw, err := askPassword(e, f, "password: ")
	if err != nil {
		return "", err
	}
	again, err := askPassword(e, f, "password again: ")
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(pw), []byte(again)) != 1 {
		return "", usageError{"the two passwords differ; nothing was registered: run the command again"}
	}
	return pw, nil
}
