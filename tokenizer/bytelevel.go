package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteLevel maps each byte to the printable character that stands for it in
// a byte-level vocabulary (GPT-2's scheme): printable Latin-1 bytes stand for
// themselves, the other 68 bytes are moved to U+0100 and up, in byte order.
var byteLevel [256]rune

// byteLevelInverse maps those characters back to their byte; -1 where a rune
// below its length stands for no byte.
var byteLevelInverse [0x144]int16

func init() {
	n := rune(0)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			byteLevel[b] = rune(b)
		} else {
			byteLevel[b] = 0x100 + n
			n++
		}
	}
	for i := range byteLevelInverse {
		byteLevelInverse[i] = -1
	}
	for b, r := range byteLevel {
		byteLevelInverse[r] = int16(b)
	}
}

// fromByteLevel returns the bytes a byte-level token stands for. ok is false
// when the token holds a character outside the byte-level alphabet.
func fromByteLevel(token string) (raw string, ok bool) {
	buf := make([]byte, 0, len(token))
	for _, r := range token {
		if r >= rune(len(byteLevelInverse)) || byteLevelInverse[r] < 0 {
			return "", false
		}
		buf = append(buf, byte(byteLevelInverse[r]))
	}
	return string(buf), true
}

// decodedBytes is what the byte-level decoder makes of one token: the bytes
// it stands for, or, for a token with characters outside the byte-level
// alphabet (an added token with a space, say), its own UTF-8 bytes.
func decodedBytes(token string) string {
	if raw, ok := fromByteLevel(token); ok {
		return raw
	}
	return token
}

// lossyString converts b to a string, replacing each maximal ill-formed
// subsequence with one U+FFFD, as Unicode recommends (and as Rust's
// String::from_utf8_lossy, which Hugging Face tokenizers uses, does). Go's
// own conversions replace every bad byte, or every run of bad bytes, which
// gives a different count of replacement characters.
func lossyString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		if b[0] < utf8.RuneSelf {
			sb.WriteByte(b[0])
			b = b[1:]
			continue
		}
		if r, n := utf8.DecodeRune(b); r != utf8.RuneError || n > 1 {
			sb.Write(b[:n])
			b = b[n:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[ill(b):]
	}
	return sb.String()
}

// validUTF8 returns s with ill-formed UTF-8 replaced as lossyString does.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return lossyString([]byte(s))
}

// ill returns the length of the maximal ill-formed subsequence at the start
// of b, which must not begin with a well-formed character: the lead byte and
// the continuation bytes that can still follow it.
func ill(b []byte) int {
	need, lo, hi := seqShape(b[0])
	if need == 0 {
		return 1
	}
	n := 1
	for n < len(b) && n <= need {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}

// seqShape describes the sequence that lead byte c starts: how many
// continuation bytes follow it and the allowed range of the first of them.
// need is 0 for a byte that cannot start a sequence.
func seqShape(c byte) (need int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 1, 0x80, 0xBF
	case c == 0xE0:
		return 2, 0xA0, 0xBF
	case c == 0xED:
		return 2, 0x80, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		return 2, 0x80, 0xBF
	case c == 0xF0:
		return 3, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 3, 0x80, 0xBF
	case c == 0xF4:
		return 3, 0x80, 0x8F
	}
	return 0, 0, 0
}

// incompleteTail returns how many bytes at the end of b form the start of a
// character that more bytes could still complete; 0 if none.
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		p := len(b) - k
		need, _, _ := seqShape(b[p])
		if need == 0 {
			if b[p] >= 0xC0 || b[p] < 0x80 {
				return 0 // an ASCII or impossible byte: nothing pending
			}
			continue // a continuation byte: look further back for its lead
		}
		if need > k-1 && ill(b[p:]) == k {
			return k
		}
		return 0
	}
	return 0
}
