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
	// MaskedPads is how many of the pad positions that follow IDs in a
	// max_length row have their labels masked too: SEAL searches the end
	// mask in the padded row, so a match may reach into the padding.
	MaskedPads int
}

// MakeExample truncates ids to maxLen and masks its labels as SEAL's server
// does: the row is padded with pad to maxLen, and when mask is not empty and
// occurs in that padded row, every label up to and including its first
// occurrence is -100.
func MakeExample(ids []int32, maxLen int, mask []int32, pad int32) Example {
	if len(ids) > maxLen {
		ids = ids[:maxLen]
	}
	ex := Example{IDs: slices.Clone(ids), Labels: slices.Clone(ids)}
	if len(mask) == 0 {
		return ex
	}
	at := func(i int) int32 {
		if i < len(ids) {
			return ids[i]
		}
		return pad
	}
	for i := 0; i+len(mask) <= maxLen; i++ {
		match := true
		for j, id := range mask {
			if at(i+j) != id {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		end := i + len(mask)
		for j := 0; j < min(end, len(ids)); j++ {
			ex.Labels[j] = -100
		}
		ex.MaskedPads = max(0, end-len(ids))
		break
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
// them) and applies truncation and the end mask. A sequence that tokenises
// to nothing is dropped (SEAL would train on a row of pads that no query can
// attend to); skipped lists their indices so the caller can warn. A
// sequence whose labels are all masked is kept, as the Trainer keeps it: it
// counts toward the batches, the steps and the schedule.
func (d Data) Examples(tok Tokenizer, seqs []string) (ex []Example, skipped []int, err error) {
	if d.MaxSeqLength < 2 {
		return nil, nil, fmt.Errorf("max_seq_length %d must be at least 2", d.MaxSeqLength)
	}
	var mask []int32
	if d.EndMaskSubstring != "" {
		mask = toInt32(tok.Encode(d.EndMaskSubstring, false))
	}
	for i, s := range seqs {
		e := MakeExample(toInt32(tok.Encode(s, true)), d.MaxSeqLength, mask, d.PadID)
		if len(e.IDs) == 0 {
			skipped = append(skipped, i)
			continue
		}
		ex = append(ex, e)
	}
	return ex, skipped, nil
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
				if i < len(e.IDs)+e.MaskedPads {
					b.Labels = append(b.Labels, -100)
				} else {
					b.Labels = append(b.Labels, padLabel)
				}
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
			n += d.MaxSeqLength - len(e.IDs) - e.MaskedPads
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
