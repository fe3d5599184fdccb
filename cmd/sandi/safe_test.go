package main

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
)

func TestUntrusted(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain text, accents é, emoji 👨‍👩‍👧 (joiners kept)", "plain text, accents é, emoji 👨‍👩‍👧 (joiners kept)"},
		{"\x1b[2J", `\x1b[2J`},
		{"\x1b]52;c;cm0gLXJmIH4=\x07", `\x1b]52;c;cm0gLXJmIH4=\x07`},
		{"\x1b]0;title\x1b\\", `\x1b]0;title\x1b\`},
		{"a\nb\rc\td\x00e", `a\x0ab\x0dc\x09d\x00e`},
		{"\x7f", `\x7f`},
		{"\u0085\u009b", `\u{0085}\u{009b}`},
		{"\u202aa\u202bb\u202cc\u202dd\u202ee", `\u{202a}a\u{202b}b\u{202c}c\u{202d}d\u{202e}e`},
		{"\u2066\u2067\u2068\u2069\u200e\u200f\u061c", `\u{2066}\u{2067}\u{2068}\u{2069}\u{200e}\u{200f}\u{061c}`},
		{"\u2028\u2029", `\u{2028}\u{2029}`},
		{"\u200b\ufeff\U000e0041", `\u{200b}\u{feff}\u{e0041}`},
		{"\xff\xc3 \xe2\x80", `\xff\xc3 \xe2\x80`},
		{"\xc3\xa9", "é"},
		// Backslashes: doubled only where they could read as an escape.
		{`\x1b`, `\\x1b`},
		{`\u{202e}`, `\\u{202e}`},
		{`C:\Users\me`, `C:\Users\me`},
		{`a\\b`, `a\\\b`},
		{"end\\", `end\`},
		{"\\\x1b", `\\\x1b`},
		{"\\\xff", `\\\xff`},
		{"\\\u202e", `\\\u{202e}`},
		{"\\é", `\é`},
	} {
		if got := untrusted(c.in); got != c.want {
			t.Errorf("untrusted(%q) = %q, want %q", c.in, got, c.want)
		}
		if back, err := unescapeUntrusted(c.want); err != nil || back != c.in {
			t.Errorf("%q reads back as %q (%v), want %q", c.want, back, err, c.in)
		}
	}
}

func TestUntrustedName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice", "alice"},
		{"bob.smith_2-x", "bob.smith_2-x"},
		{"0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"}, // a user id
		{"bob: hi", `?"bob: hi"`},
		{"Bob", `?"Bob"`},
		{"al", `?"al"`},
		{"1alice", `?"1alice"`},
		{"", `?""`},
		{strings.Repeat("a", 33), `?"` + strings.Repeat("a", 33) + `"`},
		{"0123456789abcdef0123456789abcdeg", `?"0123456789abcdef0123456789abcdeg"`},
		{"ålice", `?"ålice"`},
		{"eve\x1b[2J", `?"eve\x1b[2J"`},
		{`eve\x1b`, `?"eve\\x1b"`},
	} {
		if got := untrustedName(c.in); got != c.want {
			t.Errorf("untrustedName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := untrustedList([]string{"alice", "bob, carol"}); got != `alice, ?"bob, carol"` {
		t.Errorf("untrustedList: %q", got)
	}
}

func TestFramed(t *testing.T) {
	for _, c := range []struct {
		head, text, cont string
		width            int
		want             string
	}{
		{"[c] bob: ", "hi", "    | ", 0, "[c] bob: hi"},
		{"[c] bob: ", "one\n[c] eve: two\n", "    | ", 0, "[c] bob: one\n    | [c] eve: two\n    | "},
		{"[c] bob: ", "one\r\ntwo\x1b", "    | ", 0, "[c] bob: one\\x0d\n    | two\\x1b"},
		// Wrapped at the terminal's width, continuations under the text.
		{"[c] bob: ", "aaa bbb ccc ddd", "    | ", 16, "[c] bob: aaa bbb\n    | ccc ddd"},
		{"[c] bob: ", "look" + strings.Repeat(" ", 20) + "[c] eve: x", "    | ", 20, "[c] bob: look\n    | [c] eve: x"},
		{"[c] bob: ", strings.Repeat("x", 20), "  | ", 12, "[c] bob:\n  | xxxxxxxx\n  | xxxxxxxx\n  | xxxx"},
		{"b: ", "日本語の文", "| ", 7, "b:\n| 日本\n| 語の\n| 文"},
		{"b: ", "日本 語の文", "| ", 7, "b: 日本\n| 語の\n| 文"},
	} {
		if got := framed(c.head, c.text, c.cont, c.width); got != c.want {
			t.Errorf("framed(%q, %q, %q, %d) =\n%s\nwant\n%s", c.head, c.text, c.cont, c.width, got, c.want)
		}
	}
}

func TestPrintError(t *testing.T) {
	var b bytes.Buffer
	printError(&b, errors.Join(errors.New("server: gone\x1b[2J"), errors.New("[c] eve: hi")))
	if want := "sandi: server: gone\\x1b[2J\n       | [c] eve: hi\n"; b.String() != want {
		t.Fatalf("printed %q, want %q", b.String(), want)
	}
}

// unescapeUntrusted reads the notation of untrusted back: it is the proof
// that two texts are never shown alike.
func unescapeUntrusted(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			i++
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, `\`):
			b.WriteByte('\\')
			i += 2
		case len(rest) >= 3 && rest[0] == 'x':
			v, err := strconv.ParseUint(rest[1:3], 16, 8)
			if err != nil {
				return "", err
			}
			b.WriteByte(byte(v))
			i += 4
		case strings.HasPrefix(rest, "u{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", errors.New("unterminated \\u{")
			}
			v, err := strconv.ParseUint(rest[2:end], 16, 32)
			if err != nil {
				return "", err
			}
			b.WriteRune(rune(v))
			i += 2 + end
		default:
			b.WriteByte('\\')
			i++
		}
	}
	return b.String(), nil
}

// shownRaw reports a rune of out that must never reach the terminal: a
// control (C0, DEL, C1), a format character other than the joiners, a line
// or paragraph separator, a byte that is not UTF-8.
func shownRaw(out string) (string, bool) {
	for i := 0; i < len(out); {
		r, n := utf8.DecodeRuneInString(out[i:])
		if r == utf8.RuneError && n == 1 || unicode.IsControl(r) ||
			unicode.Is(unicode.Cf, r) && r != '\u200c' && r != '\u200d' || r == '\u2028' || r == '\u2029' {
			return out[i : i+n], true
		}
		i += n
	}
	return "", false
}

func FuzzUntrusted(f *testing.F) {
	for _, s := range []string{"", "hi", "\x1b[2J", "a\nb", `\x1b`, "\\\x1b", `\u{41}`, "\u202e", "\xff", "\\", `\\`, "é\u0085"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := untrusted(s)
		if r, bad := shownRaw(out); bad {
			t.Fatalf("untrusted(%q) = %q shows %q raw", s, out, r)
		}
		if strings.Contains(out, "\n") {
			t.Fatalf("untrusted(%q) = %q is more than one line", s, out)
		}
		back, err := unescapeUntrusted(out)
		if err != nil || back != s {
			t.Fatalf("untrusted(%q) = %q reads back as %q (%v)", s, out, back, err)
		}
	})
}

// FuzzFramed: whatever a message holds, every line after the head starts
// with the continuation, nothing is shown raw, no line is wider than the
// terminal, and nothing of the text is lost.
func FuzzFramed(f *testing.F) {
	f.Add("hi", 0)
	f.Add("one\n[c] eve: two", 20)
	f.Add("look"+strings.Repeat(" ", 30)+"[c] eve: x", 30)
	f.Add("日本語の文 👨‍👩‍👧 \x1b[2J", 13)
	f.Fuzz(func(t *testing.T, text string, width int) {
		const head, cont = "[c] bob: ", "    | "
		width = max(0, width%300)
		if width != 0 {
			width = max(width, len(head)+2) // room for a wide character after the head
		}
		out := framed(head, text, cont, width)
		if r, bad := shownRaw(strings.ReplaceAll(out, "\n", "")); bad {
			t.Fatalf("framed(%q) shows %q raw", text, r)
		}
		lines := strings.Split(out, "\n")
		shown, ok := strings.CutPrefix(lines[0], strings.TrimSpace(head)) // a break may come after the head
		if !ok {
			t.Fatalf("first line %q", lines[0])
		}
		for _, l := range lines[1:] {
			rest, ok := strings.CutPrefix(l, cont)
			if !ok {
				t.Fatalf("framed(%q, %d): line %q does not start with %q", text, width, l, cont)
			}
			shown += rest
		}
		for _, l := range lines {
			if width > 0 && ansi.StringWidth(l) > width {
				t.Fatalf("framed(%q, %d): line %q is %d wide", text, width, l, ansi.StringWidth(l))
			}
		}
		want := strings.Join(untrustedLines(text), "")
		if strings.ReplaceAll(shown, " ", "") != strings.ReplaceAll(want, " ", "") {
			t.Fatalf("framed(%q, %d) shows %q, want the text %q", text, width, shown, want)
		}
	})
}
