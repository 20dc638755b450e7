package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// A splitPattern is one of the pre-tokenizer regular expressions of the
// supported tokenizer families, implemented by hand. Go's regexp package has
// no lookahead, and these patterns end in `\s+(?!\S)|\s+`, so each is a
// small scanner that reproduces the leftmost-first matches of the original
// (Oniguruma) expression exactly. Every character of the input starts some
// match, so the matches tile the text and each match is one piece.
type splitPattern int

const (
	// gpt2Pattern is the ByteLevel pre-tokenizer's built-in expression:
	//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	gpt2Pattern splitPattern = iota
	// qwen2Pattern is Qwen2's Split expression (single digits):
	//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
	qwen2Pattern
	// llama3Pattern is Llama 3's Split expression: as qwen2Pattern, with
	// runs of up to three digits (\p{N}{1,3}).
	llama3Pattern
)

// splitPatterns maps the expressions as they appear in tokenizer.json to
// their scanners.
var splitPatterns = map[string]splitPattern{
	`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`:                                          gpt2Pattern,
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:      qwen2Pattern,
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: llama3Pattern,
}

// charClass is the class of a character as the patterns see it.
type charClass uint8

const (
	classOther  charClass = iota // [^\s\p{L}\p{N}]
	classLetter                  // \p{L}
	classNumber                  // \p{N}
	classSpace                   // \s: Unicode White_Space
)

var asciiClass [utf8.RuneSelf]charClass

func init() {
	for c := range utf8.RuneSelf {
		asciiClass[c] = classOf(rune(c))
	}
}

// classOf classifies r with Unicode 16.0's letters and numbers, the tables
// of the regular-expression engine Hugging Face tokenizers uses (Go's own
// are Unicode 15.0; see unicode16.go).
func classOf(r rune) charClass {
	switch {
	case unicode.Is(letter16, r):
		return classLetter
	case unicode.Is(number16, r):
		return classNumber
	case unicode.Is(unicode.White_Space, r):
		return classSpace
	}
	return classOther
}

// next returns the class and length of the character starting s, which
// must be valid UTF-8 and non-empty.
func next(s string) (rune, charClass, int) {
	if c := s[0]; c < utf8.RuneSelf {
		return rune(c), asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s)
	return r, classOf(r), n
}

// run returns the length of the longest prefix of s whose characters are all of class c.
func run(s string, c charClass) int {
	i := 0
	for i < len(s) {
		_, ci, n := next(s[i:])
		if ci != c {
			break
		}
		i += n
	}
	return i
}

// classAt returns the class and length of the character at s[i:], or
// ok false at the end of s.
func classAt(s string, i int) (r rune, c charClass, n int, ok bool) {
	if i >= len(s) {
		return 0, 0, 0, false
	}
	r, c, n = next(s[i:])
	return r, c, n, true
}

// match returns the length of the match starting at s[0].
func (p splitPattern) match(s string) int {
	if p == gpt2Pattern {
		return matchGPT2(s)
	}
	maxDigits := 1
	if p == llama3Pattern {
		maxDigits = 3
	}
	return matchCL(s, maxDigits)
}

// matchGPT2 implements gpt2Pattern.
func matchGPT2(s string) int {
	r0, c0, n0 := next(s)
	if r0 == '\'' {
		if k := contraction(s[1:], false); k > 0 {
			return 1 + k
		}
	}
	switch c0 {
	case classLetter, classNumber, classOther:
		return n0 + run(s[n0:], c0)
	}
	// c0 is white space.
	if r0 == ' ' {
		if _, c1, n1, ok := classAt(s, 1); ok && c1 != classSpace {
			return 1 + n1 + run(s[1+n1:], c1)
		}
	}
	return spaceRun(s)
}

// matchCL implements qwen2Pattern (maxDigits 1) and llama3Pattern (maxDigits 3).
func matchCL(s string, maxDigits int) int {
	r0, c0, n0 := next(s)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r0 == '\'' {
		if k := contraction(s[1:], true); k > 0 {
			return 1 + k
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c0 == classLetter {
		return n0 + run(s[n0:], classLetter)
	}
	if r0 != '\r' && r0 != '\n' && c0 != classNumber {
		if _, c1, n1, ok := classAt(s, n0); ok && c1 == classLetter {
			return n0 + n1 + run(s[n0+n1:], classLetter)
		}
	}
	// \p{N} or \p{N}{1,3}
	if c0 == classNumber {
		i := n0
		for d := 1; d < maxDigits; d++ {
			_, c, n, ok := classAt(s, i)
			if !ok || c != classNumber {
				break
			}
			i += n
		}
		return i
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	start := -1
	if c0 == classOther {
		start = 0
	} else if r0 == ' ' {
		if _, c1, _, ok := classAt(s, 1); ok && c1 == classOther {
			start = 1
		}
	}
	if start >= 0 {
		i := start + run(s[start:], classOther)
		for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
			i++
		}
		return i
	}
	// c0 is white space. \s*[\r\n]+ ends at the run's last line break.
	end := run(s, classSpace)
	for i := end - 1; i >= 0; i-- {
		if s[i] == '\r' || s[i] == '\n' {
			return i + 1
		}
	}
	return spaceRun(s)
}

// spaceRun matches `\s+(?!\S)|\s+` at the start of s, which begins with
// white space: the whole run if it ends the text, else the run less its last
// character (which then goes with the word after it), else one character.
func spaceRun(s string) int {
	end := run(s, classSpace)
	if end == len(s) {
		return end
	}
	_, last := utf8.DecodeLastRuneInString(s[:end])
	if end-last > 0 {
		return end - last
	}
	return end
}

// contractions are the suffixes the patterns split off after an apostrophe.
var contractions = [...]string{"s", "t", "re", "ve", "m", "ll", "d"}

// contraction returns the length of the contraction suffix at the start of
// s, or 0. With fold, letters match case-insensitively under Unicode simple
// case folding (so "ſ", LATIN SMALL LETTER LONG S, matches "s").
func contraction(s string, fold bool) int {
	for _, c := range contractions {
		i := 0
		for j := 0; j < len(c); j++ {
			if i >= len(s) {
				i = -1
				break
			}
			r, n := rune(s[i]), 1
			if r >= utf8.RuneSelf {
				r, n = utf8.DecodeRuneInString(s[i:])
			}
			if r != rune(c[j]) && !(fold && equalFold(r, rune(c[j]))) {
				i = -1
				break
			}
			i += n
		}
		if i > 0 {
			return i
		}
	}
	return 0
}

// equalFold reports whether r and lower are equal under simple case folding.
func equalFold(r, lower rune) bool {
	for f := unicode.SimpleFold(lower); f != lower; f = unicode.SimpleFold(f) {
		if f == r {
			return true
		}
	}
	return false
}
