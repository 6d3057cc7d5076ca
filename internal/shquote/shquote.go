// Package shquote quotes words for a POSIX shell command line; it does not
// parse or run commands.
package shquote

import (
	"errors"
	"strings"
)

// ErrNUL is returned by QuoteArg and JoinArgs for a word holding a NUL byte,
// which no shell command line can carry.
var ErrNUL = errors.New("shquote: word contains a NUL byte")

// Quote returns s as one shell word that a POSIX shell reads back as exactly
// s. A word made only of [A-Za-z0-9_./:@%+=,-] is returned as is, unless
// it reads as a variable assignment (NAME=...), which a shell would take as
// one in command position; every other word (the empty one too) is
// single-quoted, each ' written as '\”.
//
// Quote panics when s holds a NUL byte: a command line cannot carry it, and
// silently cutting the word could change the command. Use QuoteArg for input
// that may hold one.
func Quote(s string) string {
	q, err := QuoteArg(s)
	if err != nil {
		panic(err)
	}
	return q
}

// QuoteArg is Quote that returns ErrNUL instead of panicking.
func QuoteArg(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", ErrNUL
	}
	if s != "" && isSafe(s) && !isAssignment(s) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			b.WriteString(`'\''`)
			continue
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('\'')
	return b.String(), nil
}

// Join quotes each word and joins them with single spaces. It panics on a
// NUL byte, like Quote.
func Join(args ...string) string {
	s, err := JoinArgs(args...)
	if err != nil {
		panic(err)
	}
	return s
}

// JoinArgs is Join that returns ErrNUL instead of panicking.
func JoinArgs(args ...string) (string, error) {
	var b strings.Builder
	for i, a := range args {
		q, err := QuoteArg(a)
		if err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(q)
	}
	return b.String(), nil
}

func isSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("_./:@%+=,-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isAssignment reports whether s starts with NAME= (a POSIX name).
func isAssignment(s string) bool {
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return false
	}
	for i := 0; i < eq; i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
