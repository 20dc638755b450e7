package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzRoundTrip checks, for any valid UTF-8 text, that decoding its ids
// gives the text back (NFC-normalized for Qwen2.5, whose normalizer is NFC),
// and that the incremental decoder agrees with Decode.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "hello world", "<|im_start|>x<|im_end|>", "a\r\n\t  b", "e\u0301", "😀中", "'S 'll 123456"} {
		f.Add(s)
	}
	toks := map[string]*Tokenizer{"bytes": Bytes()}
	for _, name := range realNames {
		toks[name] = realTokenizer(f, name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for name, tok := range toks {
			want := s
			if name == "qwen2.5" {
				want = norm.NFC.String(s)
			}
			ids := tok.Encode(s, false)
			if got := tok.Decode(ids, false); got != want {
				t.Fatalf("%s: Decode(Encode(%q)) = %q", name, s, got)
			}
			d := tok.NewDecoder(false)
			var sb strings.Builder
			for _, id := range ids {
				sb.WriteString(d.Add(id))
			}
			sb.WriteString(d.Flush())
			if sb.String() != want {
				t.Fatalf("%s: streamed decoding of %q = %q", name, s, sb.String())
			}
		}
	})
}
