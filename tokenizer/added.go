package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedMatcher finds added tokens in text: leftmost match first and, of the
// tokens that match there, the longest, scanning on after each match. It is
// a byte trie; the first-byte table lets plain text go by quickly.
type addedMatcher struct {
	first [256]bool
	nodes []trieNode
}

type trieNode struct {
	next  map[byte]int32
	token int32 // index into Tokenizer.added, -1 if no token ends here
}

func newAddedMatcher() *addedMatcher {
	return &addedMatcher{nodes: []trieNode{{token: -1}}}
}

func (m *addedMatcher) insert(content string, token int) {
	m.first[content[0]] = true
	n := int32(0)
	for i := 0; i < len(content); i++ {
		c := content[i]
		nx, ok := m.nodes[n].next[c]
		if !ok {
			if m.nodes[n].next == nil {
				m.nodes[n].next = make(map[byte]int32)
			}
			nx = int32(len(m.nodes))
			m.nodes = append(m.nodes, trieNode{token: -1})
			m.nodes[n].next[c] = nx
		}
		n = nx
	}
	m.nodes[n].token = int32(token)
}

// longest returns the token and length of the longest match at s[0], or -1.
func (m *addedMatcher) longest(s string) (token, length int) {
	token, n := -1, int32(0)
	for i := 0; i < len(s); i++ {
		nx, ok := m.nodes[n].next[s[i]]
		if !ok {
			break
		}
		n = nx
		if t := m.nodes[n].token; t >= 0 {
			token, length = int(t), i+1
		}
	}
	return token, length
}

// split cuts s at the added tokens it holds and calls emit for each piece in
// order: plain text with token -1, or an added token's span (grown by its
// lstrip/rstrip white space) with its index. Matches that break the token's
// single_word rule are dropped, as Hugging Face tokenizers does.
func (m *addedMatcher) split(s string, added []addedToken, emit func(piece string, token int)) {
	if m == nil || len(m.nodes) == 1 {
		emit(s, -1)
		return
	}
	done := 0 // s[:done] has been emitted
	for i := 0; i < len(s); {
		if !m.first[s[i]] {
			i++
			continue
		}
		tok, n := m.longest(s[i:])
		if tok < 0 {
			i++
			continue
		}
		start, stop := i, i+n
		i = stop
		a := &added[tok]
		if a.SingleWord && (endsWithWord(s[:start]) || startsWithWord(s[stop:])) {
			continue
		}
		if a.LStrip {
			start = max(start-trailingSpace(s[:start]), done)
		}
		if a.RStrip {
			stop += leadingSpace(s[stop:])
		}
		if start > done {
			emit(s[done:start], -1)
		}
		emit(s[start:stop], tok)
		done = stop
	}
	if done < len(s) || len(s) == 0 {
		emit(s[done:], -1)
	}
}

// isWordChar reports whether r is in \w as Rust's regex crate defines it
// (Alphabetic, M, Nd, Pc, Join_Control), which single_word uses.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r) ||
		unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Join_Control, r)
}

func endsWithWord(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordChar(r)
}

func startsWithWord(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordChar(r)
}

// trailingSpace returns the length of the white space at the end of s.
func trailingSpace(s string) int {
	n := 0
	for len(s) > n {
		r, size := utf8.DecodeLastRuneInString(s[:len(s)-n])
		if !unicode.Is(unicode.White_Space, r) {
			break
		}
		n += size
	}
	return n
}

// leadingSpace returns the length of the white space at the start of s.
func leadingSpace(s string) int {
	n := 0
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		if !unicode.Is(unicode.White_Space, r) {
			break
		}
		n += size
	}
	return n
}
