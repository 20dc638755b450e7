package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxID bounds the token ids a file may use, so that a bad id cannot make
// the id-indexed tables huge.
const maxID = 1 << 24

// Load reads a Hugging Face model folder: dir/tokenizer.json and, when
// present, dir/tokenizer_config.json (bos_token, eos_token, pad_token,
// add_bos_token).
func Load(dir string) (*Tokenizer, error) {
	t, err := LoadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if err := t.applyConfig(data); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// LoadFile reads a tokenizer.json file alone.
func LoadFile(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// fileJSON is the top level of tokenizer.json.
type fileJSON struct {
	Version       *string           `json:"version"`
	Truncation    json.RawMessage   `json:"truncation"`
	Padding       json.RawMessage   `json:"padding"`
	AddedTokens   []json.RawMessage `json:"added_tokens"`
	Normalizer    json.RawMessage   `json:"normalizer"`
	PreTokenizer  json.RawMessage   `json:"pre_tokenizer"`
	PostProcessor json.RawMessage   `json:"post_processor"`
	Decoder       json.RawMessage   `json:"decoder"`
	Model         *json.RawMessage  `json:"model"`
}

// component is the part every normalizer, pre-tokenizer, post-processor and
// decoder has in common, plus the fields of the kinds supported.
type component struct {
	Type           string            `json:"type"`
	Normalizers    []json.RawMessage `json:"normalizers"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Processors     []json.RawMessage `json:"processors"`
	AddPrefixSpace bool              `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
	Pattern        map[string]string `json:"pattern"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	Single         []templatePiece   `json:"single"`
	SpecialTokens  map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

type templatePiece struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

type modelJSON struct {
	Dropout                 *float64         `json:"dropout"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
	IgnoreMerges            bool             `json:"ignore_merges"`
	Vocab                   map[string]int   `json:"vocab"`
	Merges                  *json.RawMessage `json:"merges"`
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	if f.Version != nil && *f.Version != "1.0" {
		return nil, fmt.Errorf("version %q is not supported (want \"1.0\")", *f.Version)
	}
	if !isNull(f.Truncation) {
		return nil, errors.New("truncation: must be null (truncation is not supported)")
	}
	if !isNull(f.Padding) {
		return nil, errors.New("padding: must be null (padding is not supported)")
	}
	if f.Model == nil {
		return nil, errors.New("model: missing")
	}
	t := &Tokenizer{bos: -1, eos: -1, pad: -1}
	if err := t.parseModel(*f.Model); err != nil {
		return nil, err
	}
	var err error
	if t.nfc, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if t.patterns, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := parseDecoder(f.Decoder); err != nil {
		return nil, err
	}
	added, err := parseAdded(f.AddedTokens)
	if err != nil {
		return nil, err
	}
	if err := t.setAdded(added); err != nil {
		return nil, err
	}
	if err := t.parsePostProcessor(f.PostProcessor, "post_processor"); err != nil {
		return nil, err
	}
	if len(t.prefix) > 0 {
		t.bos = t.prefix[0]
	}
	return t, nil
}

func (t *Tokenizer) parseModel(raw json.RawMessage) error {
	var kind struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(raw, &kind); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if kind.Type != nil && *kind.Type != "BPE" {
		return fmt.Errorf("model.type: %q is not supported (only BPE)", *kind.Type)
	}
	var m modelJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	switch {
	case m.Merges == nil:
		return errors.New("model.merges: missing (only BPE models are supported)")
	case m.Vocab == nil:
		return errors.New("model.vocab: missing")
	case m.Dropout != nil && *m.Dropout != 0:
		return fmt.Errorf("model.dropout: %v is not supported (only null)", *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return fmt.Errorf("model.continuing_subword_prefix: %q is not supported", *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return fmt.Errorf("model.end_of_word_suffix: %q is not supported", *m.EndOfWordSuffix)
	}
	t.vocab = m.Vocab
	size := 0
	for tok, id := range m.Vocab {
		if id < 0 || id >= maxID {
			return fmt.Errorf("model.vocab: token %q has id %d, out of range", tok, id)
		}
		size = max(size, id+1)
	}
	t.grow(size)
	t.model.ignoreMerges = m.IgnoreMerges
	if m.IgnoreMerges {
		t.model.words = make(map[string]int32, len(m.Vocab))
	}
	for tok, id := range m.Vocab {
		t.known[id] = true
		t.pieces[id] = decodedBytes(tok)
		if m.IgnoreMerges {
			if raw, ok := fromByteLevel(tok); ok {
				t.model.words[raw] = int32(id)
			}
		}
	}
	for b := range 256 {
		id, ok := m.Vocab[string(byteLevel[b])]
		if !ok {
			return fmt.Errorf("model.vocab: lacks the byte-level token %q for byte 0x%02X (only byte-level BPE is supported)", string(byteLevel[b]), b)
		}
		t.model.byteID[b] = int32(id)
	}
	merges, err := parseMerges(*m.Merges)
	if err != nil {
		return err
	}
	t.model.merges = make(map[uint64]mergeRule, len(merges))
	for rank, pair := range merges {
		a, okA := m.Vocab[pair[0]]
		b, okB := m.Vocab[pair[1]]
		c, okC := m.Vocab[pair[0]+pair[1]]
		if !okA || !okB || !okC {
			return fmt.Errorf("model.merges[%d]: %q %q: token not in model.vocab", rank, pair[0], pair[1])
		}
		t.model.merges[pairKey(int32(a), int32(b))] = mergeRule{rank: int32(rank), id: int32(c)}
	}
	return nil
}

// parseMerges reads merges in either form: ["a b", ...] or [["a", "b"], ...].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(bytes.TrimSpace(bytes.TrimPrefix(trimmed, []byte("[")))) > 0 &&
		bytes.TrimSpace(bytes.TrimPrefix(trimmed, []byte("[")))[0] == '[' {
		var pairs [][]string
		if err := json.Unmarshal(raw, &pairs); err != nil {
			return nil, fmt.Errorf("model.merges: %w", err)
		}
		out := make([][2]string, len(pairs))
		for i, p := range pairs {
			if len(p) != 2 {
				return nil, fmt.Errorf("model.merges[%d]: want a pair of tokens, have %d", i, len(p))
			}
			out[i] = [2]string{p[0], p[1]}
		}
		return out, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, fmt.Errorf("model.merges: %w", err)
	}
	out := make([][2]string, len(lines))
	for i, l := range lines {
		parts := strings.Split(l, " ")
		if len(parts) != 2 {
			return nil, fmt.Errorf("model.merges[%d]: %q is not two tokens separated by a space", i, l)
		}
		out[i] = [2]string{parts[0], parts[1]}
	}
	return out, nil
}

// grow makes the id-indexed tables hold at least n ids.
func (t *Tokenizer) grow(n int) {
	for len(t.pieces) < n {
		t.pieces = append(t.pieces, "")
		t.known = append(t.known, false)
		t.special = append(t.special, false)
	}
}

func parseComponent(raw json.RawMessage, field string) (*component, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return &c, nil
}

// parseNormalizer reports whether the normalizer applies NFC; null and
// empty sequences apply nothing.
func parseNormalizer(raw json.RawMessage, field string) (nfc bool, err error) {
	c, err := parseComponent(raw, field)
	if c == nil || err != nil {
		return false, err
	}
	switch c.Type {
	case "NFC":
		return true, nil
	case "Sequence":
		for i, n := range c.Normalizers {
			sub, err := parseNormalizer(n, fmt.Sprintf("%s.normalizers[%d]", field, i))
			if err != nil {
				return false, err
			}
			nfc = nfc || sub
		}
		return nfc, nil
	}
	return false, fmt.Errorf("%s.type: %q is not supported (only NFC and Sequence)", field, c.Type)
}

// parsePreTokenizer returns the split patterns; the pre-tokenizer must be a
// ByteLevel one, alone or last in a Sequence after Split pre-tokenizers.
func parsePreTokenizer(raw json.RawMessage) ([]splitPattern, error) {
	c, err := parseComponent(raw, "pre_tokenizer")
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("pre_tokenizer: null is not supported (only byte-level BPE)")
	}
	steps := []json.RawMessage{raw}
	field := "pre_tokenizer"
	if c.Type == "Sequence" {
		steps = c.Pretokenizers
		field = "pre_tokenizer.pretokenizers"
	}
	if len(steps) == 0 {
		return nil, errors.New("pre_tokenizer.pretokenizers: empty; a ByteLevel pre-tokenizer is required")
	}
	var patterns []splitPattern
	for i, step := range steps {
		name := field
		if c.Type == "Sequence" {
			name = fmt.Sprintf("%s[%d]", field, i)
		}
		s, err := parseComponent(step, name)
		if err != nil {
			return nil, err
		}
		if s == nil {
			return nil, fmt.Errorf("%s: null", name)
		}
		last := i == len(steps)-1
		switch {
		case last && s.Type != "ByteLevel":
			return nil, fmt.Errorf("%s.type: %q is not supported here; the last pre-tokenizer must be ByteLevel", name, s.Type)
		case s.Type == "ByteLevel" && !last:
			return nil, fmt.Errorf("%s: ByteLevel must be the last pre-tokenizer", name)
		case s.Type == "ByteLevel":
			if s.AddPrefixSpace {
				return nil, fmt.Errorf("%s.add_prefix_space: true is not supported", name)
			}
			if s.UseRegex == nil || *s.UseRegex {
				patterns = append(patterns, gpt2Pattern)
			}
		case s.Type == "Split":
			re, ok := s.Pattern["Regex"]
			if !ok {
				return nil, fmt.Errorf("%s.pattern: only a Regex pattern is supported", name)
			}
			p, ok := splitPatterns[re]
			if !ok {
				return nil, fmt.Errorf("%s.pattern.Regex: %q is not one of the supported expressions", name, re)
			}
			if s.Behavior != "Isolated" || s.Invert {
				return nil, fmt.Errorf("%s: behavior %q, invert %v is not supported (only Isolated, false)", name, s.Behavior, s.Invert)
			}
			patterns = append(patterns, p)
		default:
			return nil, fmt.Errorf("%s.type: %q is not supported (only Split and ByteLevel)", name, s.Type)
		}
	}
	return patterns, nil
}

func parseDecoder(raw json.RawMessage) error {
	c, err := parseComponent(raw, "decoder")
	if err != nil {
		return err
	}
	if c == nil || c.Type != "ByteLevel" {
		typ := "null"
		if c != nil {
			typ = fmt.Sprintf("%q", c.Type)
		}
		return fmt.Errorf("decoder: %s is not supported (only ByteLevel)", typ)
	}
	return nil
}

// parseAdded reads added_tokens, whose entries must have every field.
func parseAdded(raws []json.RawMessage) ([]addedToken, error) {
	out := make([]addedToken, len(raws))
	for i, raw := range raws {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, fmt.Errorf("added_tokens[%d]: %w", i, err)
		}
		for _, k := range []string{"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"} {
			if _, ok := fields[k]; !ok {
				return nil, fmt.Errorf("added_tokens[%d]: missing %q", i, k)
			}
		}
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("added_tokens[%d]: %w", i, err)
		}
	}
	return out, nil
}

// setAdded registers the added tokens, giving them ids as Hugging Face
// tokenizers does when it loads a file: a token already in the vocabulary
// keeps that id, a new one gets the next free id after the model's.
func (t *Tokenizer) setAdded(tokens []addedToken) error {
	t.addedID = make(map[string]int)
	byID := make(map[int]addedToken)
	next := len(t.vocab)
	for i, a := range tokens {
		if a.Content == "" {
			continue
		}
		id, ok := t.addedID[a.Content]
		if !ok {
			id, ok = t.vocab[a.Content]
		}
		if !ok {
			id = next
			next++
		}
		if id >= maxID {
			return fmt.Errorf("added_tokens[%d]: id %d out of range", i, id)
		}
		a.ID = id
		t.addedID[a.Content] = id
		byID[id] = a
	}
	ids := make([]int, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	t.rawAdded, t.normAdded = newAddedMatcher(), newAddedMatcher()
	specials := make(map[string]bool)
	for _, id := range ids {
		a := byID[id]
		t.grow(id + 1)
		t.known[id] = true
		t.pieces[id] = decodedBytes(a.Content)
		if a.Normalized && t.nfc {
			// Decoding gives the normalized form of a normalized token.
			t.pieces[id] = decodedBytes(normNFC(a.Content))
		}
		if a.Special {
			specials[a.Content] = true
		}
		t.added = append(t.added, a)
		content, m := a.Content, t.rawAdded
		if a.Normalized {
			m = t.normAdded
			if t.nfc {
				content = normNFC(content)
			}
		}
		m.insert(content, len(t.added)-1)
	}
	// A token is skipped by Decode when its text is a special token's.
	for tok, id := range t.vocab {
		if specials[tok] {
			t.special[id] = true
		}
	}
	for _, a := range t.added {
		t.special[a.ID] = specials[a.Content]
	}
	return nil
}

// parsePostProcessor sets the ids added around the text by Encode with
// special tokens.
func (t *Tokenizer) parsePostProcessor(raw json.RawMessage, field string) error {
	c, err := parseComponent(raw, field)
	if c == nil || err != nil {
		return err
	}
	switch c.Type {
	case "ByteLevel":
		return nil // it only adjusts offsets
	case "Sequence":
		for i, p := range c.Processors {
			if err := t.parsePostProcessor(p, fmt.Sprintf("%s.processors[%d]", field, i)); err != nil {
				return err
			}
		}
		return nil
	case "TemplateProcessing":
		var before, after []int
		seenA := false
		for i, p := range c.Single {
			switch {
			case p.Sequence != nil && p.Sequence.ID == "A" && !seenA:
				seenA = true
			case p.SpecialToken != nil:
				st, ok := c.SpecialTokens[p.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("%s.single[%d]: special token %q not in special_tokens", field, i, p.SpecialToken.ID)
				}
				for _, id := range st.IDs {
					if id < 0 || id >= len(t.known) || !t.known[id] {
						return fmt.Errorf("%s.special_tokens[%q]: id %d is not in the vocabulary", field, p.SpecialToken.ID, id)
					}
				}
				if seenA {
					after = append(after, st.IDs...)
				} else {
					before = append(before, st.IDs...)
				}
			default:
				return fmt.Errorf("%s.single[%d]: want one Sequence A and SpecialToken pieces", field, i)
			}
		}
		if !seenA {
			return fmt.Errorf("%s.single: no Sequence A", field)
		}
		t.prefix = append(before, t.prefix...)
		t.suffix = append(t.suffix, after...)
		return nil
	}
	return fmt.Errorf("%s.type: %q is not supported (only ByteLevel, TemplateProcessing and Sequence)", field, c.Type)
}

// configJSON is the part of tokenizer_config.json the tokenizer uses.
type configJSON struct {
	BOS         json.RawMessage `json:"bos_token"`
	EOS         json.RawMessage `json:"eos_token"`
	Pad         json.RawMessage `json:"pad_token"`
	AddBOSToken *bool           `json:"add_bos_token"`
}

// applyConfig takes bos, eos and pad from tokenizer_config.json. With
// add_bos_token true, Encode with special tokens starts with the BOS token
// even where the post-processor does not put it there.
func (t *Tokenizer) applyConfig(data []byte) error {
	var c configJSON
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	var err error
	if t.bos, err = t.configToken(c.BOS, "bos_token"); err != nil {
		return err
	}
	if t.eos, err = t.configToken(c.EOS, "eos_token"); err != nil {
		return err
	}
	if t.pad, err = t.configToken(c.Pad, "pad_token"); err != nil {
		return err
	}
	if c.AddBOSToken != nil && *c.AddBOSToken {
		if t.bos < 0 {
			return errors.New("add_bos_token: true, but bos_token is not set")
		}
		if len(t.prefix) == 0 || t.prefix[0] != t.bos {
			t.prefix = append([]int{t.bos}, t.prefix...)
		}
	}
	return nil
}

// configToken resolves a token field of tokenizer_config.json, written as a
// string, as an object with a "content" string, or as null; -1 if unset.
func (t *Tokenizer) configToken(raw json.RawMessage, field string) (int, error) {
	if isNull(raw) {
		return -1, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var obj struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
			return -1, fmt.Errorf("%s: want a string or an object with content", field)
		}
		s = *obj.Content
	}
	id, ok := t.TokenID(s)
	if !ok {
		return -1, fmt.Errorf("%s: %q is not in the vocabulary", field, s)
	}
	return id, nil
}
