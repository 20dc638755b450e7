package lora

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/nn"
)

// byteTok encodes text as its bytes, as the built-in model's tokenizer does.
type byteTok struct{}

func (byteTok) Encode(s string, _ bool) []int {
	ids := make([]int, len(s))
	for i := range len(s) {
		ids[i] = int(s[i])
	}
	return ids
}

func TestMakeExample(t *testing.T) {
	const pad = 2
	cases := []struct {
		name       string
		ids, mask  []int32
		maxLen     int
		wantIDs    []int32
		wantLabels []int32
		wantPads   int
	}{
		{"plain", []int32{5, 6, 7}, nil, 8, []int32{5, 6, 7}, []int32{5, 6, 7}, 0},
		{"truncated", []int32{5, 6, 7, 8}, nil, 3, []int32{5, 6, 7}, []int32{5, 6, 7}, 0},
		{"masked through the first match", []int32{1, 9, 3, 9, 3, 4}, []int32{9, 3}, 8, []int32{1, 9, 3, 9, 3, 4}, []int32{-100, -100, -100, 9, 3, 4}, 0},
		{"no match", []int32{1, 3, 4}, []int32{5}, 8, []int32{1, 3, 4}, []int32{1, 3, 4}, 0},
		{"match cut by truncation", []int32{1, 3, 9, 3}, []int32{9, 3}, 3, []int32{1, 3, 9}, []int32{1, 3, 9}, 0},
		// SEAL searches the padded row: a mask ending in the pad token
		// matches across the end of the text and masks pad labels too.
		{"match reaching into the pads", []int32{1, 3, 9}, []int32{9, pad, pad}, 6, []int32{1, 3, 9}, []int32{-100, -100, -100}, 2},
		{"match inside the pads", []int32{1, 3}, []int32{pad, pad}, 5, []int32{1, 3}, []int32{-100, -100}, 2},
		{"every label masked", []int32{1, 3, 9}, []int32{3, 9}, 3, []int32{1, 3, 9}, []int32{-100, -100, -100}, 0},
	}
	for _, c := range cases {
		e := MakeExample(c.ids, c.maxLen, c.mask, pad)
		if !slices.Equal(e.IDs, c.wantIDs) || !slices.Equal(e.Labels, c.wantLabels) || e.MaskedPads != c.wantPads {
			t.Errorf("%s: %v %v +%d masked pads, want %v %v +%d", c.name, e.IDs, e.Labels, e.MaskedPads, c.wantIDs, c.wantLabels, c.wantPads)
		}
	}
}

func TestMaskedPadsInBatch(t *testing.T) {
	d := Data{MaxSeqLength: 6, Padding: MaxLength, PadID: 2}
	e := MakeExample([]int32{1, 3, 9}, 6, []int32{9, 2}, 2)
	b := d.batch([]Example{e})
	if want := []int32{-100, -100, -100, -100, 2, 2}; !slices.Equal(b.Labels, want) {
		t.Errorf("labels %v, want %v", b.Labels, want)
	}
	if n := d.countLabels([]Example{e}); n != 2 {
		t.Errorf("%d counted labels, want 2", n)
	}
}

func TestExamplesKeepsMaskedSkipsEmpty(t *testing.T) {
	d := Data{MaxSeqLength: 16, Padding: Longest, EndMaskSubstring: "##", PadID: 256}
	exs, skipped, err := d.Examples(byteTok{}, []string{"abc ## def", "", "all masked ##", "x"})
	if err != nil {
		t.Fatal(err)
	}
	// "" has no token and is skipped; "all masked ##" (every label masked)
	// and "x" (nothing to predict) are kept: the Trainer counts them as
	// batches.
	if len(exs) != 3 || !slices.Equal(skipped, []int{1}) {
		t.Errorf("kept %d, skipped %v; want 3 kept, [1] skipped", len(exs), skipped)
	}
	if _, _, err := (Data{MaxSeqLength: 1}).Examples(byteTok{}, []string{"a"}); err == nil {
		t.Error("max_seq_length 1 accepted")
	}
}

func TestParams(t *testing.T) {
	bad := []Params{
		{Epochs: -1, BatchSize: 1, GradAccum: 1, MaxGradNorm: 1},
		{Epochs: 1, LR: math.NaN(), BatchSize: 1, GradAccum: 1, MaxGradNorm: 1},
		{Epochs: 1, BatchSize: 0, GradAccum: 1, MaxGradNorm: 1},
		{Epochs: 1, BatchSize: 1, GradAccum: 0, MaxGradNorm: 1},
	}
	for _, p := range bad {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	// transformers 4.52.4: epochs × max(floor(batches / accumulation), 1).
	steps := []struct{ n, batch, accum, epochs, want int }{
		{5, 2, 2, 3, 3},   // 3 batches, windows of 2: 1 step per epoch
		{5, 1, 2, 3, 6},   // 5 batches: 2 per epoch, the run stops in epoch 2
		{4, 1, 2, 2, 4},   // accumulation divides the batches
		{3, 1, 4, 2, 2},   // fewer batches than the accumulation: 1 per epoch
		{7, 1, 1, 10, 70}, // SEAL's defaults
	}
	for _, c := range steps {
		if got := (Params{Epochs: c.epochs, BatchSize: c.batch, GradAccum: c.accum}).Steps(c.n); got != c.want {
			t.Errorf("Steps(%d) with batch %d, accumulation %d, %d epochs = %d, want %d", c.n, c.batch, c.accum, c.epochs, got, c.want)
		}
	}
}

func TestTrainLearnsAndShuffles(t *testing.T) {
	m := nn.Builtin(cpu.Backend{})
	d := Data{MaxSeqLength: 64, Padding: Longest, PadID: 256}
	exs, _, _ := d.Examples(byteTok{}, []string{"The capital of Zorbia is Quell.", "Quell sits on the river Vand."})
	train := func(seed uint64, shuffle bool) ([]Step, *nn.Adapter) {
		ad, err := New(m, Spec{Rank: 8, Alpha: 16, Targets: AllLinear}, rand.New(rand.NewPCG(seed, 0)))
		if err != nil {
			t.Fatal(err)
		}
		steps, err := Train(context.Background(), m, ad, exs, d, Params{Epochs: 8, LR: 1e-2, BatchSize: 1, GradAccum: 1, MaxGradNorm: 1, Shuffle: shuffle, Seed: seed}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return steps, ad
	}
	a, ad := train(1, true)
	b, _ := train(1, true)
	if a[len(a)-1].Loss >= a[0].Loss/2 {
		t.Errorf("loss went from %.3f to %.3f; memorising two sentences should at least halve it", a[0].Loss, a[len(a)-1].Loss)
	}
	for i := range a {
		if a[i].Loss != b[i].Loss {
			t.Fatalf("same seed, step %d: loss %g vs %g", i+1, a[i].Loss, b[i].Loss)
		}
	}
	// The schedule decays linearly to lr/T at the last step.
	if last := a[len(a)-1]; math.Abs(last.LR-1e-2/float64(len(a))) > 1e-15 {
		t.Errorf("last lr %g, want %g", last.LR, 1e-2/float64(len(a)))
	}
	// The base model is untouched: its logits are those of a fresh copy.
	fresh := nn.Builtin(cpu.Backend{})
	batch := &nn.Batch{IDs: []int32{84, 104, 101}, Pos: []int32{0, 1, 2}, Segs: []nn.Segment{{N: 3}}}
	l1, _ := m.Logits(batch, nil, nil)
	l2, _ := fresh.Logits(batch, nil, nil)
	if maxDiff(l1, l2) != 0 {
		t.Error("training changed the base model")
	}
	withAd, _ := m.Logits(batch, ad, nil)
	if maxDiff(withAd, l1) == 0 {
		t.Error("the trained adapter does not change the logits")
	}
}

func TestTrainStopsOnNonFiniteLoss(t *testing.T) {
	m := nn.Builtin(cpu.Backend{})
	d := Data{MaxSeqLength: 32, Padding: Longest, PadID: 256}
	exs, _, _ := d.Examples(byteTok{}, []string{"some text to train on"})
	ad, _ := New(m, Spec{Rank: 4, Alpha: 8}, rand.New(rand.NewPCG(1, 1)))
	// An infinite learning rate turns the adapter into NaNs after one step.
	_, err := Train(context.Background(), m, ad, exs, d, Params{Epochs: 3, LR: math.MaxFloat64, BatchSize: 1, GradAccum: 1, MaxGradNorm: 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "not finite") {
		t.Fatalf("error %v, want a non-finite loss or gradient", err)
	}
	// A cancelled context stops before the first step.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(ctx, m, ad, exs, d, Params{Epochs: 1, LR: 1e-3, BatchSize: 1, GradAccum: 1, MaxGradNorm: 1}, nil); err == nil {
		t.Error("training ran with a cancelled context")
	}
}
