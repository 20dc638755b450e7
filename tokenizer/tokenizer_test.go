package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/rangetable"
)

func TestBytes(t *testing.T) {
	tok := Bytes()
	tests := []struct {
		text string
		want []int
	}{
		{"", []int{}},
		{"hi", []int{104, 105}},
		{"<|im_start|>user\nhi<|im_end|><|endoftext|>", []int{257, 117, 115, 101, 114, 10, 104, 105, 258, 256}},
		{"<|im_end", []int{60, 124, 105, 109, 95, 101, 110, 100}},
		{"é", []int{0xC3, 0xA9}},
		{"\x00\xff", []int{0, 0xEF, 0xBF, 0xBD}}, // ill-formed UTF-8 is encoded as U+FFFD
	}
	for _, tt := range tests {
		got := tok.Encode(tt.text, true)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
		}
		if utf8.ValidString(tt.text) {
			if back := tok.Decode(got, false); back != tt.text {
				t.Errorf("Decode(Encode(%q)) = %q", tt.text, back)
			}
		}
	}
	if got := tok.Decode([]int{257, 104, 258, 256}, true); got != "h" {
		t.Errorf("Decode skipping specials = %q, want %q", got, "h")
	}
	if id, ok := tok.EOS(); !ok || id != BytesEndOfText {
		t.Errorf("EOS() = %d, %v", id, ok)
	}
	if _, ok := tok.BOS(); ok {
		t.Error("BOS() reports a token; want none")
	}
	if got := tok.VocabSize(); got != 259 {
		t.Errorf("VocabSize() = %d, want 259", got)
	}
	for token, want := range map[string]int{"<|im_start|>": BytesIMStart, "<|im_end|>": BytesIMEnd, "a": 'a', "Ġ": ' ', "Ċ": '\n'} {
		if id, ok := tok.TokenID(token); !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", token, id, ok, want)
		}
	}
}

// TestDecoderHoldsBackCutCharacters feeds the bytes of multi-byte
// characters one id at a time.
func TestDecoderHoldsBackCutCharacters(t *testing.T) {
	tok := Bytes()
	tests := []struct {
		bytes string
		want  []string // Add's result for each byte, then Flush's
	}{
		{"é中😀", []string{"", "é", "", "", "中", "", "", "", "😀", ""}},
		{"a\xe2\x82b", []string{"a", "", "", "\uFFFDb", ""}},
		{"\xf0\x9f\x98", []string{"", "", "", "\uFFFD"}},
		{"\x80\xc3", []string{"\uFFFD", "", "\uFFFD"}},
		{"\xc3\xc3\xa9", []string{"", "\uFFFD", "é", ""}},
	}
	for _, tt := range tests {
		d := tok.NewDecoder(false)
		var got []string
		for i := 0; i < len(tt.bytes); i++ {
			got = append(got, d.Add(int(tt.bytes[i])))
		}
		got = append(got, d.Flush())
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.bytes, got, tt.want)
		}
	}
	d := tok.NewDecoder(true)
	if got := d.Add(BytesIMEnd) + d.Add('x') + d.Add(-1) + d.Add(1000); got != "x" {
		t.Errorf("skipping decoder gave %q, want %q", got, "x")
	}
}

func TestLossyString(t *testing.T) {
	// Replacement per maximal ill-formed subsequence (Unicode 15, 3.9.6).
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"\xe2\x82", "\uFFFD"},
		{"\xe2\x82a", "\uFFFDa"},
		{"\xc0\xaf", "\uFFFD\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"\xf0\x9f\x98\xf0\x9f\x98\x80", "\uFFFD😀"},
		{"\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64", "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd"},
	}
	for _, tt := range tests {
		if got := lossyString([]byte(tt.in)); got != tt.want {
			t.Errorf("lossyString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// minimalFile returns the fields of a small byte-level tokenizer.json: the
// 256 byte tokens, merges for "ab", "abc" and "  ", and one special token.
func minimalFile() map[string]any {
	vocab := map[string]int{}
	for b := range 256 {
		vocab[string(byteLevel[b])] = b
	}
	vocab["ab"], vocab["abc"], vocab["ĠĠ"], vocab["bc"] = 256, 257, 258, 259
	return map[string]any{
		"version":    "1.0",
		"truncation": nil,
		"padding":    nil,
		"added_tokens": []map[string]any{
			addedTok(260, "<eos>", "special"),
		},
		"normalizer":     map[string]any{"type": "NFC"},
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel"},
		"model": map[string]any{
			"type":   "BPE",
			"vocab":  vocab,
			"merges": []string{"a b", "ab c", "Ġ Ġ", "b c"},
		},
	}
}

// addedTok returns an added_tokens entry with the flags named set.
func addedTok(id int, content string, flags ...string) map[string]any {
	a := map[string]any{"id": id, "content": content, "single_word": false, "lstrip": false,
		"rstrip": false, "normalized": false, "special": false}
	for _, f := range flags {
		a[f] = true
	}
	return a
}

func writeJSON(t *testing.T, dir, name string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadMinimal(t *testing.T, edit func(f map[string]any), config any) (*Tokenizer, error) {
	t.Helper()
	f := minimalFile()
	if edit != nil {
		edit(f)
	}
	dir := t.TempDir()
	writeJSON(t, dir, "tokenizer.json", f)
	if config != nil {
		writeJSON(t, dir, "tokenizer_config.json", config)
	}
	return Load(dir)
}

func model(f map[string]any) map[string]any { return f["model"].(map[string]any) }

func TestLoadRefusesWithFieldName(t *testing.T) {
	tests := []struct {
		name string
		edit func(f map[string]any)
		want string
	}{
		{"wordpiece", func(f map[string]any) { model(f)["type"] = "WordPiece" }, `model.type: "WordPiece" is not supported`},
		{"unigram", func(f map[string]any) { f["model"] = map[string]any{"type": "Unigram", "vocab": [][]any{{"a", 0.0}}} }, `model.type: "Unigram"`},
		{"no merges", func(f map[string]any) { delete(model(f), "merges") }, "model.merges: missing"},
		{"merge of unknown token", func(f map[string]any) { model(f)["merges"] = []string{"a zz"} }, `model.merges[0]: "a" "zz": token not in model.vocab`},
		{"merge of three tokens", func(f map[string]any) { model(f)["merges"] = []string{"a b c"} }, "model.merges[0]"},
		{"merge pair of one", func(f map[string]any) { model(f)["merges"] = [][]string{{"a"}} }, "model.merges[0]: want a pair"},
		{"dropout", func(f map[string]any) { model(f)["dropout"] = 0.1 }, "model.dropout"},
		{"subword prefix", func(f map[string]any) { model(f)["continuing_subword_prefix"] = "##" }, "model.continuing_subword_prefix"},
		{"missing byte", func(f map[string]any) { delete(model(f)["vocab"].(map[string]int), "Ġ") }, "model.vocab: lacks the byte-level token"},
		{"truncation", func(f map[string]any) { f["truncation"] = map[string]any{"max_length": 8} }, "truncation"},
		{"padding", func(f map[string]any) { f["padding"] = map[string]any{} }, "padding"},
		{"nfkc", func(f map[string]any) { f["normalizer"] = map[string]any{"type": "NFKC"} }, `normalizer.type: "NFKC"`},
		{"nested normalizer", func(f map[string]any) {
			f["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "Lowercase"}}}
		}, `normalizer.normalizers[0].type: "Lowercase"`},
		{"no pre-tokenizer", func(f map[string]any) { f["pre_tokenizer"] = nil }, "pre_tokenizer: null"},
		{"prefix space", func(f map[string]any) { f["pre_tokenizer"].(map[string]any)["add_prefix_space"] = true }, "pre_tokenizer.add_prefix_space"},
		{"unknown regex", func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\w+`}, "behavior": "Isolated"},
				map[string]any{"type": "ByteLevel", "use_regex": false},
			}}
		}, `pre_tokenizer.pretokenizers[0].pattern.Regex: "\\w+" is not one of the supported`},
		{"split behavior", func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`}, "behavior": "Removed"},
				map[string]any{"type": "ByteLevel", "use_regex": false},
			}}
		}, `pre_tokenizer.pretokenizers[0]: behavior "Removed"`},
		{"byte level not last", func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "ByteLevel"}, map[string]any{"type": "Whitespace"},
			}}
		}, "pre_tokenizer.pretokenizers[0]: ByteLevel must be the last"},
		{"metaspace", func(f map[string]any) { f["pre_tokenizer"] = map[string]any{"type": "Metaspace"} }, `pre_tokenizer.type: "Metaspace" is not supported`},
		{"split without byte level", func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`}, "behavior": "Isolated"},
			}}
		}, `pre_tokenizer.pretokenizers[0].type: "Split" is not supported here`},
		{"empty sequence", func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{}}
		}, "pre_tokenizer.pretokenizers: empty"},
		{"no decoder", func(f map[string]any) { f["decoder"] = nil }, "decoder: null is not supported"},
		{"wordpiece decoder", func(f map[string]any) { f["decoder"] = map[string]any{"type": "WordPiece"} }, `decoder: "WordPiece"`},
		{"bert processor", func(f map[string]any) { f["post_processor"] = map[string]any{"type": "BertProcessing"} }, `post_processor.type: "BertProcessing"`},
		{"template without A", func(f map[string]any) {
			f["post_processor"] = map[string]any{"type": "TemplateProcessing", "single": []any{}}
		}, "post_processor.single: no Sequence A"},
		{"template unknown special", func(f map[string]any) {
			f["post_processor"] = map[string]any{"type": "TemplateProcessing", "single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<s>"}}, map[string]any{"Sequence": map[string]any{"id": "A"}},
			}}
		}, `post_processor.single[0]: special token "<s>" not in special_tokens`},
		{"version", func(f map[string]any) { f["version"] = "2.0" }, `version "2.0"`},
		{"added token field missing", func(f map[string]any) { delete(f["added_tokens"].([]map[string]any)[0], "lstrip") }, `added_tokens[0]: missing "lstrip"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadMinimal(t, tt.edit, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadFile of a missing file: no error")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{not json"), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a tokenizer.json") {
		t.Errorf("Load of bad JSON: err = %v", err)
	}
}

func TestMinimalTokenizer(t *testing.T) {
	pairs := func(f map[string]any) {
		model(f)["merges"] = [][]string{{"a", "b"}, {"ab", "c"}, {"Ġ", "Ġ"}, {"b", "c"}}
	}
	for _, edit := range []func(map[string]any){nil, pairs} {
		tok, err := loadMinimal(t, edit, nil)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			text string
			want []int
		}{
			{"abc", []int{257}},
			{"abcabc", []int{257, 257}},
			{"bca", []int{259, 'a'}},
			{"ab<eos>c", []int{256, 260, 'c'}},
			// GPT-2's expression gives "    " then " x": two runs of two spaces are merged.
			{"     x", []int{258, 258, ' ', 'x'}},
		}
		for _, tt := range tests {
			if got := tok.Encode(tt.text, true); !slices.Equal(got, tt.want) {
				t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
			}
		}
	}
}

// TestConcurrentEncode encodes from several goroutines at once (the merge
// cache is shared) and compares with the results of one goroutine.
func TestConcurrentEncode(t *testing.T) {
	tok := realTokenizer(t, "qwen2.5")
	var texts []string
	for _, c := range loadCorpus(t) {
		if c.Kind == "mix" || c.Kind == "soup" {
			texts = append(texts, c.Text)
		}
	}
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = tok.Encode(s, false)
	}
	tok.model.cache = nil // start the goroutines on an empty cache
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range texts {
				s := texts[(i+g*97)%len(texts)]
				if got := tok.Encode(s, false); !slices.Equal(got, want[(i+g*97)%len(texts)]) {
					errs <- s
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Errorf("concurrent Encode(%q) differs", s)
	}
}

// TestAddedTokenFlags checks the added-token options as Hugging Face
// tokenizers applies them (tokenizer/added_vocabulary.rs): lstrip and
// rstrip take the white space beside the token into it, single_word matches
// only between non-word characters, normalized tokens match the NFC text.
func TestAddedTokenFlags(t *testing.T) {
	const m = 261 // id of the added token "<m>"
	tests := []struct {
		name  string
		token map[string]any
		text  string
		want  []int
	}{
		{"plain", map[string]any{}, "a <m> b", []int{'a', ' ', m, ' ', 'b'}},
		{"lstrip", map[string]any{"lstrip": true}, "a  <m> b", []int{'a', m, ' ', 'b'}},
		{"rstrip", map[string]any{"rstrip": true}, "a <m> \n b", []int{'a', ' ', m, 'b'}},
		{"both", map[string]any{"lstrip": true, "rstrip": true}, "a <m> b", []int{'a', m, 'b'}},
		{"single word inside a word", map[string]any{"single_word": true}, "a<m>b", []int{'a', '<', 'm', '>', 'b'}},
		{"single word alone", map[string]any{"single_word": true}, "a <m>.", []int{'a', ' ', m, '.'}},
		{"single word at the ends", map[string]any{"single_word": true}, "<m>", []int{m}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := loadMinimal(t, func(f map[string]any) {
				a := addedTok(m, "<m>")
				for k, v := range tt.token {
					a[k] = v
				}
				f["added_tokens"] = append(f["added_tokens"].([]map[string]any), a)
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Encode(tt.text, false); !slices.Equal(got, tt.want) {
				t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
	for _, normalized := range []bool{false, true} {
		tok, err := loadMinimal(t, func(f map[string]any) {
			a := addedTok(260, "é!")
			a["normalized"] = normalized
			f["added_tokens"] = []map[string]any{a}
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := tok.Encode("xe\u0301!", false)
		want := []int{'x', 0xC3, 0xA9, '!'} // NFC, then the two bytes of é
		if normalized {
			want = []int{'x', 260}
		}
		if !slices.Equal(got, want) {
			t.Errorf("normalized=%v: Encode(\"xe\\u0301!\") = %v, want %v", normalized, got, want)
		}
	}
}

func TestIgnoreMerges(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		tok, err := loadMinimal(t, func(f map[string]any) {
			model(f)["vocab"].(map[string]int)["ca"] = 261 // no merge makes "ca"
			model(f)["ignore_merges"] = ignore
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{'c', 'a'}
		if ignore {
			want = []int{261}
		}
		if got := tok.Encode("ca", false); !slices.Equal(got, want) {
			t.Errorf("ignore_merges=%v: Encode(\"ca\") = %v, want %v", ignore, got, want)
		}
	}
}

func TestPostProcessorAndConfig(t *testing.T) {
	template := func(f map[string]any) {
		f["added_tokens"] = []map[string]any{
			addedTok(260, "<s>", "special"),
			addedTok(261, "</s>", "special"),
			addedTok(262, "<pad>", "special"),
		}
		f["post_processor"] = map[string]any{"type": "Sequence", "processors": []any{
			map[string]any{"type": "ByteLevel"},
			map[string]any{"type": "TemplateProcessing",
				"single": []any{
					map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
					map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
					map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
				},
				"special_tokens": map[string]any{
					"<s>":  map[string]any{"id": "<s>", "ids": []int{260}, "tokens": []string{"<s>"}},
					"</s>": map[string]any{"id": "</s>", "ids": []int{261}, "tokens": []string{"</s>"}},
				}},
		}}
	}
	tok, err := loadMinimal(t, template, map[string]any{
		"bos_token": map[string]any{"content": "<s>", "__type": "AddedToken"},
		"eos_token": "</s>",
		"pad_token": "<pad>",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Encode("ab", true), []int{260, 256, 261}; !slices.Equal(got, want) {
		t.Errorf("Encode with special tokens = %v, want %v", got, want)
	}
	if got, want := tok.Encode("ab", false), []int{256}; !slices.Equal(got, want) {
		t.Errorf("Encode without special tokens = %v, want %v", got, want)
	}
	for name, f := range map[string]func() (int, bool){"BOS": tok.BOS, "EOS": tok.EOS, "Pad": tok.Pad} {
		want := map[string]int{"BOS": 260, "EOS": 261, "Pad": 262}[name]
		if id, ok := f(); !ok || id != want {
			t.Errorf("%s() = %d, %v; want %d", name, id, ok, want)
		}
	}

	// add_bos_token puts BOS first where the post-processor does not.
	withBOS := func(f map[string]any) {
		f["added_tokens"] = []map[string]any{addedTok(260, "<s>", "special")}
	}
	tok, err = loadMinimal(t, withBOS, map[string]any{"bos_token": "<s>", "add_bos_token": true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Encode("ab", true), []int{260, 256}; !slices.Equal(got, want) {
		t.Errorf("add_bos_token: Encode = %v, want %v", got, want)
	}
	if _, ok := tok.EOS(); ok {
		t.Error("EOS() reports a token the config does not name")
	}

	for _, bad := range []struct {
		config map[string]any
		want   string
	}{
		{map[string]any{"eos_token": "<nope>"}, `eos_token: "<nope>" is not in the vocabulary`},
		{map[string]any{"bos_token": 5}, "bos_token: want a string"},
		{map[string]any{"add_bos_token": true}, "add_bos_token: true, but bos_token is not set"},
	} {
		if _, err := loadMinimal(t, withBOS, bad.config); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("config %v: err = %v, want one containing %q", bad.config, err, bad.want)
		}
	}
}

// TestRealConfigs checks the special tokens the real tokenizers' configs name.
func TestRealConfigs(t *testing.T) {
	tests := []struct {
		name     string
		bos, eos int // -1: none
	}{
		{"qwen2.5", -1, 151645},    // eos <|im_end|>; no bos
		{"llama3", 128000, 128009}, // <|begin_of_text|>, <|eot_id|>
		{"gpt2", 50256, 50256},     // <|endoftext|> for both
	}
	for _, tt := range tests {
		tok := realTokenizer(t, tt.name)
		bos, okB := tok.BOS()
		eos, okE := tok.EOS()
		if okB != (tt.bos >= 0) || okB && bos != tt.bos || okE != (tt.eos >= 0) || okE && eos != tt.eos {
			t.Errorf("%s: BOS() = %d, %v; EOS() = %d, %v; want %d, %d", tt.name, bos, okB, eos, okE, tt.bos, tt.eos)
		}
	}
}

// TestAddedTokenIDs checks that added tokens get their ids as Hugging Face
// tokenizers gives them on load, whatever id the file states: a token in
// the model vocabulary keeps its id, a new one takes the next free id.
func TestAddedTokenIDs(t *testing.T) {
	tok, err := loadMinimal(t, func(f map[string]any) {
		f["added_tokens"] = []map[string]any{
			addedTok(999, "ab", "special"),
			addedTok(7, "<x>", "special"),
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]int{"ab": 256, "<x>": 260} {
		if id, ok := tok.TokenID(token); !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", token, id, ok, want)
		}
	}
	if got := tok.Decode([]int{256, 'c', 260}, true); got != "c" {
		t.Errorf("Decode skipping specials = %q, want %q", got, "c")
	}
}

// TestUnicode16Tables checks the generated Unicode 16.0 tables against Go's
// Unicode 15.0 ones: they may differ only on code points unassigned in 15.0.
func TestUnicode16Tables(t *testing.T) {
	assigned15 := rangetable.Assigned("15.0.0")
	if assigned15 == nil || unicode.Version != "15.0.0" {
		t.Fatalf("Go's Unicode is %s; revisit unicode16.go", unicode.Version)
	}
	diff := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.Is(unicode.L, r) == unicode.Is(letter16, r) && unicode.Is(unicode.N, r) == unicode.Is(number16, r) {
			continue
		}
		diff++
		if unicode.Is(assigned15, r) {
			t.Errorf("U+%04X: letter %v/%v, number %v/%v in Unicode 15.0/16.0", r,
				unicode.Is(unicode.L, r), unicode.Is(letter16, r), unicode.Is(unicode.N, r), unicode.Is(number16, r))
		}
	}
	if diff == 0 {
		t.Error("the Unicode 16.0 tables add nothing to Go's")
	}
	for r, want := range map[rune]charClass{0x1CCF0: classNumber, 0x105C0: classLetter, 'a': classLetter, '7': classNumber, 0x3000: classSpace, '!': classOther} {
		if got := classOf(r); got != want {
			t.Errorf("classOf(U+%04X) = %d, want %d", r, got, want)
		}
	}
}
