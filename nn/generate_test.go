package nn_test

import (
	"context"
	"slices"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/nn"
)

// seqBatch is the batch of one unpadded sequence at positions 0..n-1.
func seqBatch(ids []int32) *nn.Batch {
	b := &nn.Batch{IDs: ids, Segs: []nn.Segment{{N: len(ids)}}}
	for i := range ids {
		b.Pos = append(b.Pos, int32(i))
	}
	return b
}

// greedyByFullForward decodes greedily by re-running the whole sequence each
// step: slow, but free of any cache logic.
func greedyByFullForward(t *testing.T, m *nn.Model, prompt []int32, n int) []int32 {
	seq := slices.Clone(prompt)
	var out []int32
	for range n {
		logits, err := m.Logits(seqBatch(seq), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		V := m.Config.VocabSize
		tok := int32(cpu.Argmax(logits[(len(seq)-1)*V : len(seq)*V]))
		out = append(out, tok)
		seq = append(seq, tok)
	}
	return out
}

func TestGenerateMatchesFullForward(t *testing.T) {
	m := nn.Builtin(cpu.Backend{})
	prompts := [][]int32{{72, 101, 108, 108, 111}, {1, 2, 3}, {200, 201, 202, 203, 204, 205, 206, 207, 208}}
	got, err := m.Generate(context.Background(), prompts, nil, nn.GenerateOptions{MaxNewTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		want := greedyByFullForward(t, m, p, 12)
		if !slices.Equal(got[i], want) {
			t.Errorf("prompt %d: cached batched decode %v, full forward %v", i, got[i], want)
		}
	}
}

func TestGenerateStopsAndSamples(t *testing.T) {
	m := nn.Builtin(cpu.Backend{})
	prompt := [][]int32{{72, 101, 108, 108, 111}}
	full, err := m.Generate(context.Background(), prompt, nil, nn.GenerateOptions{MaxNewTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(full[0]) != 8 {
		t.Fatalf("got %d tokens, want 8", len(full[0]))
	}
	// Stopping at the third generated token returns the two before it.
	stopped, err := m.Generate(context.Background(), prompt, nil, nn.GenerateOptions{MaxNewTokens: 8, StopIDs: []int{int(full[0][2])}})
	if err != nil {
		t.Fatal(err)
	}
	want := full[0][:slices.Index(full[0], full[0][2])]
	if !slices.Equal(stopped[0], want) {
		t.Errorf("with stop id %d: %v, want %v", full[0][2], stopped[0], want)
	}
	// Sampling is reproducible for a seed and differs across seeds.
	opts := nn.GenerateOptions{MaxNewTokens: 16, Temperature: 1.5, TopP: 0.95, Seed: 7}
	a, _ := m.Generate(context.Background(), prompt, nil, opts)
	b, _ := m.Generate(context.Background(), prompt, nil, opts)
	opts.Seed = 8
	c, _ := m.Generate(context.Background(), prompt, nil, opts)
	if !slices.Equal(a[0], b[0]) {
		t.Errorf("same seed, different samples: %v vs %v", a[0], b[0])
	}
	if slices.Equal(a[0], c[0]) {
		t.Errorf("seeds 7 and 8 sampled the same 16 tokens %v", a[0])
	}
}

// TestDecodeAllocatesNothingPerToken: once a Generate call has set up its
// cache and buffers, each further token of a single sequence allocates
// nothing, so 40 new tokens cost as many allocations as 8.
func TestDecodeAllocatesNothingPerToken(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race, whose instrumentation allocates")
	}
	m := nn.Builtin(cpu.Backend{})
	prompt := [][]int32{{72, 101, 108, 108, 111}}
	allocs := func(n int) float64 {
		return testing.AllocsPerRun(3, func() {
			out, err := m.Generate(context.Background(), prompt, nil, nn.GenerateOptions{MaxNewTokens: n})
			if err != nil || len(out[0]) != n {
				t.Fatalf("generated %d tokens, %v", len(out[0]), err)
			}
		})
	}
	short, long := allocs(8), allocs(40)
	t.Logf("allocations per Generate call: %.0f for 8 tokens, %.0f for 40", short, long)
	// 32 more tokens: one allocation per token would add 32. The runtime
	// itself (a goroutine's stack, a timer) now and then adds one to a
	// run, so up to 2 more are not counted against decoding.
	if long > short+2 {
		t.Errorf("8 tokens: %.0f allocations, 40 tokens: %.0f; decoding allocates per token", short, long)
	}
}
