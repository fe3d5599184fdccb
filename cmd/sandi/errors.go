package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"sandi.dev/client"
)

// explained is an error with a sentence that says what to do about it; it
// wraps the error it explains.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// explain adds to an error of a client command what the user can do about
// it, where the command line is the place to say it (the SDK's texts name
// no commands).
func explain(e *cli, err error) error {
	var cm *client.ConversationMatchError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrNoServer):
		return &explained{"no server given: name it with --server URL or in the SANDI_SERVER environment variable (for example --server https://chat.example.org)",
			usageError{err.Error()}}
	case errors.Is(err, client.ErrNoAccount):
		home, aerr := filepath.Abs(e.g.home)
		if aerr != nil {
			home = e.g.home
		}
		return &explained{fmt.Sprintf("not logged in: no account on this device (home directory %s): run 'sandi register' or 'sandi login', or name the home directory of another with --home DIR", home), err}
	case errors.Is(err, client.ErrRemoveSelf):
		return &explained{"you cannot remove yourself from a conversation; to leave it, use 'sandi leave CONV'", err}
	case errors.As(err, &cm) && len(cm.Candidates) == 0:
		return &explained{err.Error() + "; 'sandi list' shows your conversations", err}
	}
	return err
}

// serverURL returns the server URL that --server (or SANDI_SERVER) names:
// as given when it starts with http:// or https://. A host and port alone
// get http:// on a loopback address (localhost, 127.0.0.0/8, ::1), where
// a test server has no certificate, and https:// anywhere else, with a
// note on stderr saying which; anything else is refused with the form to
// use.
func (e *cli) serverURL() (string, error) {
	s := e.g.server
	if s == "" {
		return "", nil
	}
	full, why := s, ""
	if !strings.Contains(s, "://") {
		host, _, _ := strings.Cut(s, "/")
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		scheme := "https://"
		why = "the address is not a loopback one"
		if host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(strings.Trim(host, "[]")).IsLoopback() {
			scheme, why = "http://", "a loopback address"
		}
		full = scheme + s
	}
	u, err := url.Parse(full)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", usageError{fmt.Sprintf("the server URL %s is not one sandi can use: give it as https://HOST[:PORT] (or http://HOST:PORT on a loopback address)", s)}
	}
	if why != "" {
		fmt.Fprintf(e.stderr, "sandi: the server URL %s has no scheme: using %s (%s)\n", untrusted(s), untrusted(full), why)
	}
	return full, nil
}
