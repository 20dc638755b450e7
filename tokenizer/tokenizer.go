// Package tokenizer encodes and decodes text exactly as Hugging Face
// tokenizers does for the byte-level BPE tokenizers of the Qwen2.5, Llama 3
// and GPT-2 families, reading their tokenizer.json (and, when present,
// tokenizer_config.json).
//
// Supported tokenizer.json parts: a BPE model (merges as "a b" strings or
// ["a", "b"] pairs, ignore_merges); an NFC normalizer, alone or in a
// Sequence; a ByteLevel pre-tokenizer, alone or after Split pre-tokenizers
// whose expression is Qwen2's or Llama 3's (matched by hand-written scanners
// with Unicode 16.0 letter and number classes, as Hugging Face's regular
// expression engine has them); added tokens
// with their special, lstrip, rstrip, normalized and single_word flags; the
// ByteLevel and TemplateProcessing post-processors, alone or in a Sequence;
// the ByteLevel decoder. Anything else (WordPiece or Unigram models, other
// normalizers, other expressions, truncation or padding) is refused at load
// time with an error that names the field.
//
// Text that is not valid UTF-8 is encoded as if each ill-formed sequence were
// U+FFFD. A Tokenizer is safe for concurrent use.
package tokenizer

import (
	"golang.org/x/text/unicode/norm"
)

// A Tokenizer turns text into token ids and back.
type Tokenizer struct {
	model     bpe
	nfc       bool           // NFC-normalize text outside non-normalized added tokens
	patterns  []splitPattern // pre-tokenizer splits, applied in order
	vocab     map[string]int // model vocabulary, token string -> id
	added     []addedToken   // added tokens, by index
	addedID   map[string]int // added token content -> id
	rawAdded  *addedMatcher  // added tokens with normalized=false, matched in the raw text
	normAdded *addedMatcher  // added tokens with normalized=true, matched after normalization
	pieces    []string       // id -> the bytes the decoder makes of it
	known     []bool         // id -> whether the id names a token
	special   []bool         // id -> whether Decode may skip it
	prefix    []int          // ids the post-processor puts before the text's
	suffix    []int          // ... and after it
	bos       int            // -1 if none
	eos       int            // -1 if none
	pad       int            // -1 if none
}

// Encode returns the token ids of text. With addSpecialTokens, the
// post-processor's special tokens are added (Llama 3's <|begin_of_text|>, for
// instance); special tokens written in the text are recognised either way.
func (t *Tokenizer) Encode(text string, addSpecialTokens bool) []int {
	text = validUTF8(text)
	ids := make([]int, 0, len(text)/3+len(t.prefix)+len(t.suffix)+1)
	if addSpecialTokens {
		ids = append(ids, t.prefix...)
	}
	t.rawAdded.split(text, t.added, func(piece string, tok int) {
		if tok >= 0 {
			ids = append(ids, t.added[tok].ID)
			return
		}
		if t.nfc {
			piece = normNFC(piece)
		}
		t.normAdded.split(piece, t.added, func(piece string, tok int) {
			if tok >= 0 {
				ids = append(ids, t.added[tok].ID)
				return
			}
			ids = t.encodePlain(piece, 0, ids)
		})
	})
	if addSpecialTokens {
		ids = append(ids, t.suffix...)
	}
	return ids
}

// encodePlain pre-tokenizes s with the patterns from level on and appends
// the ids of each word.
func (t *Tokenizer) encodePlain(s string, level int, ids []int) []int {
	if level == len(t.patterns) {
		return t.model.encode(s, ids)
	}
	p := t.patterns[level]
	for len(s) > 0 {
		n := p.match(s)
		ids = t.encodePlain(s[:n], level+1, ids)
		s = s[n:]
	}
	return ids
}

// Decode returns the text of ids. Ids that name no token are left out, as
// are special tokens when skipSpecialTokens is set. Byte sequences that are
// not valid UTF-8 (a character cut between ids, say) become U+FFFD, one per
// maximal ill-formed subsequence.
func (t *Tokenizer) Decode(ids []int, skipSpecialTokens bool) string {
	var buf []byte
	for _, id := range ids {
		buf = append(buf, t.piece(id, skipSpecialTokens)...)
	}
	return lossyString(buf)
}

// piece returns the decoded bytes of id, or "" for an unknown or skipped id.
func (t *Tokenizer) piece(id int, skipSpecial bool) string {
	if id < 0 || id >= len(t.pieces) || !t.known[id] || skipSpecial && t.special[id] {
		return ""
	}
	return t.pieces[id]
}

// TokenID returns the id of a token given as it is written in the
// vocabulary: an added token's content ("<|im_end|>") or a model token in
// its byte-level form ("Ġthe" for " the").
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if id, ok := t.addedID[token]; ok {
		return id, true
	}
	id, ok := t.vocab[token]
	return id, ok
}

// VocabSize returns one more than the largest token id: the number of rows
// an embedding table needs to hold every id the tokenizer can produce.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// BOS returns the beginning-of-sequence token: tokenizer_config.json's
// bos_token when the file is present, else the token the post-processor
// puts first, if any.
func (t *Tokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// EOS returns tokenizer_config.json's eos_token, if any.
func (t *Tokenizer) EOS() (int, bool) { return t.eos, t.eos >= 0 }

// Pad returns tokenizer_config.json's pad_token, if any.
func (t *Tokenizer) Pad() (int, bool) { return t.pad, t.pad >= 0 }

// A Decoder decodes ids one at a time, for streaming generated text. It
// holds back the bytes of a character that is not complete yet, so every
// string it returns is valid UTF-8, and the concatenation of all Add results
// followed by Flush equals Decode of all the ids. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	t       *Tokenizer
	skip    bool
	pending []byte
}

// NewDecoder returns an incremental decoder; skipSpecialTokens is as for Decode.
func (t *Tokenizer) NewDecoder(skipSpecialTokens bool) *Decoder {
	return &Decoder{t: t, skip: skipSpecialTokens}
}

// Add decodes one more id and returns the text it completes, possibly "".
func (d *Decoder) Add(id int) string {
	d.pending = append(d.pending, d.t.piece(id, d.skip)...)
	n := len(d.pending) - incompleteTail(d.pending)
	if n == 0 {
		return ""
	}
	s := lossyString(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return s
}

// Flush returns what is held back (an incomplete character, as U+FFFD) and
// resets the decoder.
func (d *Decoder) Flush() string {
	s := lossyString(d.pending)
	d.pending = d.pending[:0]
	return s
}

func normNFC(s string) string {
	if norm.NFC.IsNormalString(s) {
		return s
	}
	return norm.NFC.String(s)
}
