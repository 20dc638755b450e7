package tokenizer

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// The real tokenizers, fetched by `make tokenizers` into .cache/tokenizers
// and pinned by testdata/tokenizers.sha256.
var realNames = []string{"qwen2.5", "llama3", "gpt2"}

// goldenNames are the tokenizers with fixtures: the real ones and
// testdata/synthetic, a small tokenizer.json written by
// tools/golden/tokenizer_golden.py that uses every supported option.
var goldenNames = append(realNames[:len(realNames):len(realNames)], "synthetic")

// goldenTokenizer returns the tokenizer a fixture was made from.
func goldenTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	if name != "synthetic" {
		return realTokenizer(t, name)
	}
	tok, err := Load(filepath.Join("testdata", "synthetic"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var (
	realOnce sync.Once
	realToks map[string]*Tokenizer
	realErr  error
)

// realTokenizer loads a real tokenizer folder after checking its files'
// sha256. A missing or changed file fails the test: these files are what
// the fixtures were made from.
func realTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	realOnce.Do(func() { realToks, realErr = loadRealTokenizers() })
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realToks[name]
}

func loadRealTokenizers() (map[string]*Tokenizer, error) {
	root := filepath.Join("..", ".cache", "tokenizers")
	sums, err := os.Open(filepath.Join("testdata", "tokenizers.sha256"))
	if err != nil {
		return nil, err
	}
	defer sums.Close()
	sc := bufio.NewScanner(sums)
	for sc.Scan() {
		want, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			return nil, fmt.Errorf("testdata/tokenizers.sha256: bad line %q", sc.Text())
		}
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return nil, fmt.Errorf("%v (run `make tokenizers` to fetch the pinned tokenizer files)", err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("%s: sha256 %s, want %s (run `make tokenizers`)", file, got, want)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	toks := make(map[string]*Tokenizer)
	for _, name := range realNames {
		tok, err := Load(filepath.Join(root, name))
		if err != nil {
			return nil, err
		}
		toks[name] = tok
	}
	return toks, nil
}

type corpusEntry struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
}

func loadCorpus(t testing.TB) []corpusEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "tokenizer_corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c []corpusEntry
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// golden is a fixture file written by tools/golden/tokenizer_golden.py.
type golden struct {
	Tokenizer   string          `json:"tokenizer"`
	CorpusSize  int             `json:"corpus_size"`
	VocabSize   int             `json:"vocab_size"`
	TokenIDs    map[string]*int `json:"token_ids"`
	Encode      []encodeCase    `json:"encode"`
	DecodeCases []decodeCase    `json:"decode"`
}

// encodeCase holds Hugging Face's results for one corpus string. Fields
// other than IDs are set only where they differ from the obvious: Text from
// the string itself, Skip from Text, and with special tokens the ids are
// SpecialPrefix + IDs + SpecialSuffix unless Special is set.
type encodeCase struct {
	IDs           []int   `json:"ids"`
	Special       []int   `json:"special"`
	SpecialPrefix []int   `json:"special_prefix"`
	SpecialSuffix []int   `json:"special_suffix"`
	Text          *string `json:"text"`
	Skip          *string `json:"skip"`
}

type decodeCase struct {
	IDs  []int   `json:"ids"`
	Text string  `json:"text"`
	Skip *string `json:"skip"`
}

func loadGolden(t testing.TB, name string) *golden {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "tokenizer_golden_"+name+".json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.NewDecoder(zr).Decode(&g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// TestGoldenEncode compares Encode with Hugging Face tokenizers on every
// corpus string, with and without special tokens.
func TestGoldenEncode(t *testing.T) {
	corpus := loadCorpus(t)
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			tok, g := goldenTokenizer(t, name), loadGolden(t, name)
			if g.CorpusSize != len(corpus) || len(g.Encode) != len(corpus) {
				t.Fatalf("fixture made from %d strings, corpus has %d: regenerate it", g.CorpusSize, len(corpus))
			}
			bad := 0
			for i, c := range g.Encode {
				s := corpus[i].Text
				want := c.IDs
				got := tok.Encode(s, false)
				wantSpecial := c.Special
				if wantSpecial == nil {
					wantSpecial = slices.Concat(c.SpecialPrefix, c.IDs, c.SpecialSuffix)
				}
				gotSpecial := tok.Encode(s, true)
				if !slices.Equal(got, want) || !slices.Equal(gotSpecial, wantSpecial) {
					bad++
					if bad <= 10 {
						t.Errorf("#%d %s %q:\n got %v\nwant %v\n with special tokens got %v want %v", i, corpus[i].Kind, clip(s), clipIDs(got), clipIDs(want), clipIDs(gotSpecial), clipIDs(wantSpecial))
					}
				}
			}
			t.Logf("%s: %d/%d strings match", name, len(corpus)-bad, len(corpus))
		})
	}
}

// TestGoldenDecode compares Decode with Hugging Face tokenizers on each
// corpus string's ids (which checks Decode(Encode(s)) == s wherever Hugging
// Face round-trips) and on id sequences that cut characters apart, and
// checks that the incremental Decoder agrees with Decode.
func TestGoldenDecode(t *testing.T) {
	corpus := loadCorpus(t)
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			tok, g := goldenTokenizer(t, name), loadGolden(t, name)
			var cases []decodeCase
			for i, c := range g.Encode {
				text := corpus[i].Text
				if c.Text != nil {
					text = *c.Text
				}
				cases = append(cases, decodeCase{IDs: c.IDs, Text: text, Skip: c.Skip})
			}
			cases = append(cases, g.DecodeCases...)
			bad := 0
			for i, c := range cases {
				skip := c.Text
				if c.Skip != nil {
					skip = *c.Skip
				}
				for _, sk := range []bool{false, true} {
					want := c.Text
					if sk {
						want = skip
					}
					got := tok.Decode(c.IDs, sk)
					streamed := decodeStream(t, tok, c.IDs, sk)
					if got != want || streamed != want {
						bad++
						if bad <= 10 {
							t.Errorf("case %d ids %v skip=%v:\n got %q\n streamed %q\nwant %q", i, clipIDs(c.IDs), sk, clip(got), clip(streamed), clip(want))
						}
					}
				}
			}
			t.Logf("%s: %d/%d decodings match", name, 2*len(cases)-bad, 2*len(cases))
		})
	}
}

// decodeStream decodes ids one at a time, checking every piece is valid UTF-8.
func decodeStream(t *testing.T, tok *Tokenizer, ids []int, skip bool) string {
	d := tok.NewDecoder(skip)
	var sb strings.Builder
	for _, id := range ids {
		s := d.Add(id)
		if !utf8.ValidString(s) {
			t.Errorf("Decoder.Add(%d) = %q: not valid UTF-8", id, s)
		}
		sb.WriteString(s)
	}
	sb.WriteString(d.Flush())
	return sb.String()
}

// TestGoldenVocab checks VocabSize and TokenID against Hugging Face.
func TestGoldenVocab(t *testing.T) {
	for _, name := range goldenNames {
		tok, g := goldenTokenizer(t, name), loadGolden(t, name)
		if got := tok.VocabSize(); got != g.VocabSize {
			t.Errorf("%s: VocabSize() = %d, want %d", name, got, g.VocabSize)
		}
		for token, want := range g.TokenIDs {
			id, ok := tok.TokenID(token)
			if want == nil && ok || want != nil && (!ok || id != *want) {
				t.Errorf("%s: TokenID(%q) = %d, %v; want %v", name, token, id, ok, want)
			}
		}
	}
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func clipIDs(ids []int) []int {
	if len(ids) > 40 {
		return ids[:40]
	}
	return ids
}
