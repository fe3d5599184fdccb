// Command sandi is the one binary of sandi: `sandi serve` runs the server;
// the other commands are the command-line client.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		var ue usageError
		fmt.Fprintln(os.Stderr, "sandi:", err)
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `sandi: a self-hosted end-to-end-encrypted messenger

Usage:
  sandi serve [--addr HOST:PORT] [--data DIR] [--db URL]
      run the server (defaults: 127.0.0.1:8080, ./sandi-data, SQLite in DIR)
  sandi help
      show this help
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}
