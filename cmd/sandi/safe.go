package main

// Text that comes from other users or from the server (message texts,
// titles, usernames, device names, the server's error texts) is printed only
// through untrusted (one line) or framed (a message's lines under a head the
// CLI writes), so that it can neither drive the terminal nor pass for a line
// of another user or of sandi itself.
//
// The notation, also in the README ("What the CLI prints"):
//
//	\xHH    a C0 control (U+0000–U+001F; a line feed too where the text is
//	        shown on one line), DEL (U+007F), or one byte that is not UTF-8
//	\u{H…}  a C1 control (U+0080–U+009F), a line or paragraph separator
//	        (U+2028, U+2029), or a format character (Unicode category Cf:
//	        the bidirectional controls U+061C, U+200E, U+200F, U+202A–U+202E,
//	        U+2066–U+2069, zero-width spaces, tags…) other than the joiners
//	        U+200C and U+200D, which emoji and several scripts need
//	\\      a backslash that comes before a backslash, an 'x', a 'u' or an
//	        escaped character, so that a text that contains "\x1b" as four
//	        characters is not shown as one that contains ESC
//
// Every other backslash is shown as is. The notation is reversible: two
// different texts are never shown alike (unescapeUntrusted in the tests
// reads it back). Usernames go through untrustedName, which also quotes a
// name that does not have a username's form.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
	"golang.org/x/term"
)

// untrusted returns s as one line of printable text: the characters listed
// above are written in the notation, line feeds included.
func untrusted(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case escapedRune(r):
			fmt.Fprintf(&b, `\u{%04x}`, r)
		case r == '\\':
			b.WriteByte('\\')
			if i+n < len(s) && escapeNext(s[i+n:]) {
				b.WriteByte('\\')
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// escapedRune reports whether a valid rune at or above U+0080 is shown in the
// \u{…} notation.
func escapedRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f, r == '\u2028', r == '\u2029':
		return true
	case r == '\u200c', r == '\u200d':
		return false
	}
	return unicode.Is(unicode.Cf, r)
}

// escapeNext reports whether a backslash before rest is doubled: when rest
// begins with what an escape's second character could be.
func escapeNext(rest string) bool {
	r, n := utf8.DecodeRuneInString(rest)
	switch {
	case r == utf8.RuneError && n == 1, r < 0x20, r == 0x7f, escapedRune(r):
		return true // shown as \x… or \u{…}
	}
	return r == '\\' || r == 'x' || r == 'u'
}

// untrustedLines splits s at line feeds and returns each line through
// untrusted.
func untrustedLines(s string) []string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = untrusted(l)
	}
	return lines
}

// untrustedName shows a username that came from the server. The server
// accepts only usernames of 3 to 32 characters among a-z, 0-9, '.', '_' and
// '-', starting with a letter (and the client names a user it cannot look
// up by the 32 hex digits of its id); a name of another form comes from a
// server that misbehaves and is shown as ?"…", so that a name like
// "bob: hi" cannot pass for the name and the text of another user.
func untrustedName(s string) string {
	if usernameForm(s) {
		return s
	}
	return `?"` + untrusted(s) + `"`
}

func usernameForm(s string) bool {
	if len(s) == 32 && strings.Trim(s, "0123456789abcdef") == "" {
		return true // a user id
	}
	if len(s) < 3 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == ""
}

// untrustedList shows usernames on one line, separated by ", ".
func untrustedList(names []string) string {
	shown := make([]string, len(names))
	for i, n := range names {
		shown[i] = untrustedName(n)
	}
	return strings.Join(shown, ", ")
}

// framed prints an untrusted text after head, a line the program wrote: the
// text's first line follows head, and every further line starts with cont,
// which must begin with a space, so that no line of the text can start at
// column 0 and pass for a head. With width > 0 (a terminal that many
// columns wide) lines are also wrapped, the continuations starting with
// cont too, so that the terminal's own wrapping cannot put text at
// column 0. The result has no line feed at the end.
func framed(head, text, cont string, width int) string {
	var out []string
	for i, l := range untrustedLines(text) {
		if i == 0 {
			l = head + l
		} else {
			l = cont + l
		}
		out = append(out, wrapHanging(l, width, cont)...)
	}
	return strings.Join(out, "\n")
}

// wrapHanging breaks line (printable text, no line feed) into lines of at
// most width columns, at spaces where it can; every line after the first
// starts with indent. width <= 0 is no limit. It takes time linear in the
// length of line.
func wrapHanging(line string, width int, indent string) []string {
	if width <= 0 || ansi.StringWidth(line) <= width {
		return []string{line}
	}
	var out []string
	prefix, room := "", width
	keep := 0 // bytes of line before which it is not broken at a space
	if strings.HasPrefix(line, indent) {
		keep = len(indent) // a continuation line keeps its indent whole
	}
	for {
		cut := fitting(line, room)
		if cut == len(line) {
			return append(out, prefix+line)
		}
		if cut <= keep { // the room holds no more than the indent, or less than one character
			c, _ := ansi.FirstGraphemeCluster(line[keep:], ansi.GraphemeWidth)
			cut = keep + max(len(c), 1)
		} else if line[cut] != ' ' {
			if sp := strings.LastIndexByte(line[:cut], ' '); sp > keep && strings.TrimLeft(line[:sp], " ") != "" {
				cut = sp
			}
		}
		cut = min(cut, len(line))
		chunk := line[:cut]
		if cut > keep {
			chunk = line[:keep] + strings.TrimRight(line[keep:cut], " ")
		}
		out = append(out, prefix+chunk)
		line, keep = strings.TrimLeft(line[cut:], " "), 0
		if line == "" {
			return out
		}
		prefix, room = indent, max(1, width-ansi.StringWidth(indent))
	}
}

// fitting returns the length in bytes of the longest prefix of s, in whole
// grapheme clusters, that is at most room columns wide.
func fitting(s string, room int) int {
	n, w := 0, 0
	for n < len(s) {
		c, cw := ansi.FirstGraphemeCluster(s[n:], ansi.GraphemeWidth)
		if c == "" || w+cw > room {
			break
		}
		n, w = n+len(c), w+cw
	}
	return n
}

// termWidth is the number of columns of w when it is a terminal, else 0.
func termWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	n, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return n
}

// printWrapped prints line (the program's text and untrusted parts) on w,
// wrapped to w's width when w is a terminal, continuations starting with
// cont.
func printWrapped(w io.Writer, line, cont string) {
	fmt.Fprintln(w, strings.Join(wrapHanging(line, termWidth(w), cont), "\n"))
}

// errorCont starts every further line of an error.
const errorCont = "       | "

// printError prints err as "sandi: …" on w: an error's text may hold what
// the server or another user sent, so it is framed like a message.
func printError(w io.Writer, err error) {
	fmt.Fprintln(w, framed("sandi: ", err.Error(), errorCont, termWidth(w)))
}
