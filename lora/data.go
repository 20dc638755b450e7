package lora

import (
	"fmt"
	"slices"

	"github.com/goseal/ttt/nn"
)

// Padding is how training rows are padded, SEAL's way or the fast way.
type Padding int

const (
	// MaxLength pads every row with the pad (eos) token to MaxSeqLength and
	// keeps the pad positions in the loss, as SEAL's server does; pads are
	// masked only as attention keys.
	MaxLength Padding = iota
	// Longest pads each batch to its longest row and ignores pad positions
	// in the loss: the same training signal on real tokens, far less work.
	Longest
)

// ParsePadding reads "max_length" or "longest".
func ParsePadding(s string) (Padding, error) {
	switch s {
	case "max_length", "":
		return MaxLength, nil
	case "longest":
		return Longest, nil
	}
	return 0, fmt.Errorf("unknown padding mode %q (want max_length or longest)", s)
}

// String returns the mode's request name: "max_length" or "longest".
func (p Padding) String() string {
	if p == Longest {
		return "longest"
	}
	return "max_length"
}

// Example is one training sequence: its token ids (truncated, unpadded) and
// labels (the ids, with -100 where the loss ignores them).
type Example struct {
	IDs    []int32
	Labels []int32
}

// MakeExample truncates ids to maxLen and masks its labels: when mask is not
// empty and occurs in ids, every label up to and including its first
// occurrence is -100.
func MakeExample(ids []int32, maxLen int, mask []int32) Example {
	if len(ids) > maxLen {
		ids = ids[:maxLen]
	}
	ex := Example{IDs: slices.Clone(ids), Labels: slices.Clone(ids)}
	if len(mask) == 0 {
		return ex
	}
	for i := 0; i+len(mask) <= len(ids); i++ {
		if slices.Equal(ids[i:i+len(mask)], mask) {
			for j := 0; j < i+len(mask); j++ {
				ex.Labels[j] = -100
			}
			break
		}
	}
	return ex
}

// Tokenizer is what data preparation needs of a tokenizer.
type Tokenizer interface {
	Encode(text string, addSpecialTokens bool) []int
}

// Data says how training text becomes rows.
type Data struct {
	MaxSeqLength     int
	Padding          Padding
	EndMaskSubstring string
	PadID            int32 // the tokenizer's eos, as SEAL sets pad = eos
}

// Examples tokenises every sequence (special tokens as the tokenizer adds
// them) and applies truncation and the end mask. Sequences that would give
// the loss nothing to learn (no token, or every predicted label masked) are
// dropped; skipped lists their indices so the caller can warn.
func (d Data) Examples(tok Tokenizer, seqs []string) (ex []Example, skipped []int, err error) {
	if d.MaxSeqLength < 2 {
		return nil, nil, fmt.Errorf("max_seq_length %d must be at least 2", d.MaxSeqLength)
	}
	var mask []int32
	if d.EndMaskSubstring != "" {
		mask = toInt32(tok.Encode(d.EndMaskSubstring, false))
	}
	for i, s := range seqs {
		e := MakeExample(toInt32(tok.Encode(s, true)), d.MaxSeqLength, mask)
		if !d.trainable(e) {
			skipped = append(skipped, i)
			continue
		}
		ex = append(ex, e)
	}
	return ex, skipped, nil
}

// trainable reports whether an example has a token and a predicted label the
// loss counts (a label at row ≥ 1, or a pad label in MaxLength mode).
func (d Data) trainable(e Example) bool {
	if len(e.IDs) == 0 {
		return false
	}
	if d.Padding == MaxLength && len(e.IDs) < d.MaxSeqLength {
		return true
	}
	for _, l := range e.Labels[1:] {
		if l >= 0 {
			return true
		}
	}
	return false
}

// batch lays out examples as one nn.TrainBatch, padded per d.Padding.
func (d Data) batch(exs []Example) *nn.TrainBatch {
	width := d.MaxSeqLength
	if d.Padding == Longest {
		width = 0
		for _, e := range exs {
			width = max(width, len(e.IDs))
		}
	}
	padLabel := d.PadID
	if d.Padding == Longest {
		padLabel = -100
	}
	b := &nn.TrainBatch{}
	for _, e := range exs {
		q := len(b.IDs)
		b.Segs = append(b.Segs, nn.Segment{Q: q, N: width, KV: q, Keys: len(e.IDs)})
		for i := 0; i < width; i++ {
			b.Pos = append(b.Pos, int32(i))
			if i < len(e.IDs) {
				b.IDs = append(b.IDs, e.IDs[i])
				b.Labels = append(b.Labels, e.Labels[i])
			} else {
				b.IDs = append(b.IDs, d.PadID)
				b.Labels = append(b.Labels, padLabel)
			}
		}
	}
	return b
}

// countLabels counts the labels that are not -100 in the padded rows of
// exs, unshifted, as the Trainer's num_items_in_batch does.
func (d Data) countLabels(exs []Example) int {
	n := 0
	for _, e := range exs {
		for _, l := range e.Labels {
			if l >= 0 {
				n++
			}
		}
		if d.Padding == MaxLength {
			n += d.MaxSeqLength - len(e.IDs)
		}
	}
	return n
}

func toInt32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}
