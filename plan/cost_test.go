package plan

import (
	"slices"
	"testing"

	"github.com/goseal/ttt/lora"
)

// tinyRequest trains one sequence of 3 tokens for one epoch and answers 2
// questions of 3 prompt tokens with 2 answer tokens.
var tinyRequest = Request{Sequences: 1, SeqLen: 3, Epochs: 1, BatchSize: 1, GradAccum: 1, LoRA: tinyLoRA,
	Questions: 2, PromptLen: 3, AnswerLen: 2}

// TestTinyEstimate checks every phase of tinyRequest on the CPU backend
// against counts made by hand. Per token, the blocks' products are
// 2·144·2 = 576 FLOPs, the adapter's 2·28 = 56, the head's 2·4·10 = 80;
// attention is 4·2·2·2 = 32 per (query, key) pair. A pass reads the
// weights (2·160 + 4 + 40)·4 = 1456 bytes; a token's KV is 32 bytes.
func TestTinyEstimate(t *testing.T) {
	want := []Phase{
		// 6 prompt tokens, 2·(3·4/2) = 12 pairs, 2 rows of logits. One
		// pass; embedding rows 6·4·4, KV written and read 2·6·32, logits
		// written and read 2·2·10·4.
		{Name: "baseline prefill", Passes: 1, FLOPs: 6*576 + 12*32 + 2*80, Bytes: 1456 + 96 + 384 + 160},
		// One step of 2 rows, each seeing 4 keys; KV read 8·32, written
		// 2·32.
		{Name: "baseline decode", Passes: 1, FLOPs: 2*(576+80) + 8*32, Bytes: 1456 + 32 + 256 + 64 + 160},
		// Forward 3·(576+56) + 6 pairs·32; backward 3·(576 + 144) + 6·112
		// (the adapter's backward: (6·4 + 4·4) + (6·4 + 4·2) = 72 per
		// block); head 4·3·4·10. Bytes: blocks read twice 2·1280, head
		// twice 2·176, embedding rows 48, kept activations written and
		// read 2·3·76·4, logits 4·3·10·4, adapter 16·28.
		{Name: "training fwd+bwd", Passes: 1, FLOPs: 3*(576+56) + 6*32 + 3*(576+144) + 6*112 + 480,
			Bytes: 2*1280 + 2*176 + 48 + 2*3*76*4 + 480 + 448},
		// One step over 28 parameters.
		{Name: "optimizer", Passes: 1, FLOPs: 16 * 28, Bytes: 36 * 28},
		// As the baseline, with the adapter's products and 4·28 bytes read
		// per pass.
		{Name: "adapted prefill", Passes: 1, FLOPs: 6*(576+56) + 12*32 + 2*80, Bytes: 1456 + 112 + 96 + 384 + 160},
		{Name: "adapted decode", Passes: 1, FLOPs: 2*(576+56+80) + 8*32, Bytes: 1456 + 112 + 32 + 256 + 64 + 160},
	}
	p := &Plan{Model: Model{Cfg: tiny, Backend: CPU}, Budget: 1 << 20}
	e, err := p.Estimate(tinyRequest)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Phases) != len(want) {
		t.Fatalf("%d phases, want %d", len(e.Phases), len(want))
	}
	for i, w := range want {
		g := e.Phases[i]
		if g.Name != w.Name || g.Passes != w.Passes || g.FLOPs != w.FLOPs || g.Bytes != w.Bytes {
			t.Errorf("phase %d: %+v, want %+v", i, g, w)
		}
	}
	w := p.WeightBytes()
	if e.Recompute || e.Group != 2 || e.Steps != 1 || e.Micro != 1 || !e.Fits || e.Peak != w+2464 {
		t.Errorf("estimate %+v, want group 2, one step, peak weights + 2464, no recomputation", e)
	}

	// A budget of 2200 bytes: training recomputes (2104 bytes), running the
	// blocks' forward pass a second time and reading their weights once
	// more; kept traffic is the blocks' inputs and, again, one block's
	// activations for every block: 2·3·2·(4+38)·4. Adapted generation (1680
	// + 448 for the adapter) still fits.
	p.Budget = 2200
	if e, err = p.Estimate(tinyRequest); err != nil {
		t.Fatal(err)
	}
	tr := e.Phases[2]
	if wantF, wantB := want[2].FLOPs+3*(576+56)+6*32, float64(3*1280+2*176+48+2*3*2*42*4+480+448); !e.Recompute || tr.FLOPs != wantF || tr.Bytes != wantB || tr.Peak != w+2104 || !e.Fits {
		t.Errorf("recomputing: %+v (recompute %v, fits %v), want FLOPs %g, bytes %g, peak %d", tr, e.Recompute, e.Fits, wantF, wantB, w+2104)
	}
	// 2000 bytes: nothing fits training.
	p.Budget = 2000
	if e, err = p.Estimate(tinyRequest); err != nil || e.Fits {
		t.Errorf("budget 2000: fits %v, %v", e.Fits, err)
	}
	// Not even one question fits.
	p.Budget = 100
	if _, err = p.Estimate(tinyRequest); err == nil {
		t.Error("budget 100: no error")
	}
}

func TestEstimateTotalsAndBounds(t *testing.T) {
	p := &Plan{Model: Model{Cfg: tiny, Backend: CPU}, Budget: 1 << 20}
	e, err := p.Estimate(tinyRequest)
	if err != nil {
		t.Fatal(err)
	}
	tot := e.Total()
	var f, b float64
	for _, ph := range e.Phases {
		f += ph.FLOPs
		b += ph.Bytes
	}
	if tot.FLOPs != f || tot.Bytes != b || tot.Passes != 6 || tot.Peak != e.Peak {
		t.Errorf("total %+v", tot)
	}
	// On a chip of 1 TFLOPS and 1 GB/s every tiny phase is bound by its
	// bytes: a nanosecond per byte.
	c := Chip{FP32TFLOPS: 1, BandwidthGBs: 1}
	if got := e.Bound(c); got < b*1e-9*(1-1e-12) || got > b*1e-9*(1+1e-12) { // summation order only
		t.Errorf("bound %g s, want %g s", got, b*1e-9)
	}
	// Without training there is no adapted generation.
	r := tinyRequest
	r.Sequences = 0
	if e, err = p.Estimate(r); err != nil || len(e.Phases) != 2 {
		t.Errorf("no training: %d phases, %v", len(e.Phases), err)
	}
	for _, bad := range []Request{{Questions: 1}, {Sequences: 1, SeqLen: 8, BatchSize: 1, GradAccum: 1, Epochs: 1}, {Sequences: -1},
		{Sequences: 1, SeqLen: 65, BatchSize: 1, GradAccum: 1, Epochs: 1, LoRA: tinyLoRA}, {Questions: 1, PromptLen: 60, AnswerLen: 5}} {
		if _, err := p.Estimate(bad); err == nil {
			t.Errorf("request %+v accepted", bad)
		}
	}
}

// TestMicroBatches: the steps are lora.Params.Steps, and the micro-batches
// cover every sequence once per epoch unless the accumulation cuts the
// last epochs short.
func TestMicroBatches(t *testing.T) {
	for _, c := range []struct {
		n, batch, accum, epochs int
		sizes                   []int
	}{
		{2, 1, 1, 10, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{5, 2, 1, 1, []int{2, 2, 1}},
		{5, 2, 2, 2, []int{2, 2, 1}}, // 2 steps: the first epoch's two windows take both
		{3, 4, 1, 2, []int{3, 3}},
		{7, 1, 4, 1, []int{1, 1, 1, 1}}, // one step: the last window is cut
	} {
		steps, sizes := microBatches(c.n, c.batch, c.accum, c.epochs)
		want := lora.Params{Epochs: c.epochs, BatchSize: c.batch, GradAccum: c.accum}.Steps(c.n)
		if steps != want || !slices.Equal(sizes, c.sizes) {
			t.Errorf("%+v: %d steps over %v, want %d over %v", c, steps, sizes, want, c.sizes)
		}
	}
}
