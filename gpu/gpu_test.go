package gpu_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/gpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/nn/nntest"
)

// open returns the test process's Metal backend (the emulator off a Mac).
func open(t *testing.T) *gpu.Backend { return nntest.Metal(t) }

func tinyModel(t *testing.T, b nn.Backend) *nn.Model {
	m, err := nn.Load(filepath.Join("..", "nn", "testdata", "models", "qwen2_tied", "f32"), b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestUploadIsOrdered: an upload into a tensor that queued work reads takes
// effect after that work, as the seam requires.
func TestUploadIsOrdered(t *testing.T) {
	b := open(t)
	x := b.NewTensor(hf.F32, 1, 5)
	y := b.NewTensor(hf.F32, 1, 5)
	z := b.NewTensor(hf.F32, 1, 5)
	b.Upload(x, []float32{1, 2, 3, 4, 5}) // nothing queued: written in place
	b.Copy(y, x)
	b.Upload(x, []float32{10, 20, 30, 40, 50}) // queued: staged, then copied in order
	b.Copy(z, x)
	got := make([]float32, 5)
	if err := b.Download(got, y); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []float32{1, 2, 3, 4, 5}) {
		t.Errorf("the op queued before the upload read %v", got)
	}
	if err := b.Download(got, z); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []float32{10, 20, 30, 40, 50}) {
		t.Errorf("the op queued after the upload read %v", got)
	}

	// Integers staged behind queued work arrive bit for bit, those that
	// read as subnormal or NaN floats (ids, -100 labels) too.
	ids := b.NewTensor(hf.I32, 1, 6)
	b.Copy(y, x) // something queued
	want := []int32{0, 1, 151935, -100, -1, 1 << 30}
	b.UploadInts(ids, want)
	gotIDs := make([]int32, 6)
	if err := b.DownloadInts(gotIDs, ids); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotIDs, want) {
		t.Errorf("staged ids arrived as %v, want %v", gotIDs, want)
	}
}

// TestTrainingStepCounts: once the first optimizer step has sized every
// buffer, a step encodes its forward, backward and update into one command
// buffer, waits once (to read the loss and the gradient norm) and allocates
// nothing.
func TestTrainingStepCounts(t *testing.T) {
	b := open(t)
	m := tinyModel(t, b)
	ad, err := lora.New(m, lora.Spec{Rank: 4, Alpha: 8}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	d := lora.Data{MaxSeqLength: 24, Padding: lora.MaxLength, PadID: 0}
	var exs []lora.Example
	for _, seq := range [][]int32{{5, 9, 14, 3, 22, 35, 7, 100}, {8, 6, 30, 2, 11}, {40, 41, 42, 43, 44, 45}} {
		exs = append(exs, lora.MakeExample(seq, d.MaxSeqLength, nil, d.PadID))
	}
	var at []gpu.Stats
	_, err = lora.Train(context.Background(), m, ad, exs, d, lora.Params{Epochs: 2, LR: 1e-3, BatchSize: 1, GradAccum: 1, MaxGradNorm: 1}, func(lora.Step) {
		at = append(at, b.Stats())
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(at) != 6 {
		t.Fatalf("%d steps, want 6", len(at))
	}
	for i := 2; i < len(at); i++ {
		prev, cur := at[i-1], at[i]
		if w, c, a := cur.Waits-prev.Waits, cur.CommandBuffers-prev.CommandBuffers, cur.Allocs-prev.Allocs; w != 1 || c != 1 || a != 0 {
			t.Errorf("step %d: %d waits, %d command buffers, %d allocations; want 1, 1, 0", i+1, w, c, a)
		}
		if n, first := cur.Dispatches-prev.Dispatches, at[1].Dispatches-at[0].Dispatches; n != first {
			t.Errorf("step %d: %d dispatches, step 2: %d; a step of the same shape should encode the same work", i+1, n, first)
		}
	}
	t.Logf("a training step (2 layers, 24 tokens): %d dispatches", at[2].Dispatches-at[1].Dispatches)

	// A second request of the same shape: its adapter, optimizer state and
	// activations reuse the first one's buffers.
	ad.Free(b)
	before := b.Stats()
	ad, err = lora.New(m, lora.Spec{Rank: 4, Alpha: 8}, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lora.Train(context.Background(), m, ad, exs, d, lora.Params{Epochs: 2, LR: 1e-3, BatchSize: 1, GradAccum: 1, MaxGradNorm: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if n := b.Stats().Allocs - before.Allocs; n != 0 {
		t.Errorf("a second request of the same shape allocated %d buffers", n)
	}
}

// TestDecodeCounts: each generated token costs one wait, and a request of a
// shape seen before allocates nothing: its KV cache and activations reuse
// the buffers the earlier one gave back.
func TestDecodeCounts(t *testing.T) {
	b := open(t)
	m := tinyModel(t, b)
	run := func(n int) gpu.Stats {
		before := b.Stats()
		out, err := m.Generate(context.Background(), [][]int32{{1, 2, 3, 4}, {7, 8}}, nil, nn.GenerateOptions{MaxNewTokens: n})
		if err != nil || len(out[0]) != n {
			t.Fatalf("generated %v, %v", out, err)
		}
		after := b.Stats()
		return gpu.Stats{Waits: after.Waits - before.Waits, Allocs: after.Allocs - before.Allocs, Dispatches: after.Dispatches - before.Dispatches}
	}
	run(4) // the first calls of each shape allocate what the next reuse
	run(12)
	short, long := run(4), run(12)
	if long.Waits-short.Waits != 8 || long.Allocs != 0 || short.Allocs != 0 {
		t.Errorf("4 tokens: %+v, 12 tokens: %+v; want one more wait per token and no allocation", short, long)
	}
	t.Logf("a decode step (2 prompts, 2 layers): %d dispatches", (long.Dispatches-short.Dispatches)/8)
}

// TestWeightsAreNotCopied: a model's weights stay in their file's memory
// map, in their stored dtype: loading allocates no device buffer for them.
func TestWeightsAreNotCopied(t *testing.T) {
	b := open(t)
	for _, variant := range []string{"f32", "bf16"} {
		before := b.Stats()
		m, err := nn.Load(filepath.Join("..", "nn", "testdata", "models", "qwen2_untied", variant), b)
		if err != nil {
			t.Fatal(err)
		}
		if n := b.Stats().Allocs - before.Allocs; n != 0 {
			t.Errorf("%s: loading allocated %d device buffers", variant, n)
		}
		if want := map[string]hf.DType{"f32": hf.F32, "bf16": hf.BF16}[variant]; m.Embed.DType != want || m.Blocks[0].Linear[hf.QProj].DType != want {
			t.Errorf("%s: weights held as %v", variant, m.Embed.DType)
		}
	}
}

// TestModelCloseAndReload: closing a model lets go of its files' mappings,
// so a model loaded again (its files perhaps mapped at the same address)
// computes from the new mapping.
func TestModelCloseAndReload(t *testing.T) {
	b := open(t)
	batch := &nn.Batch{IDs: []int32{1, 2, 3}, Pos: []int32{0, 1, 2}, Segs: []nn.Segment{{N: 3}}}
	var first []float32
	for i := range 3 {
		m, err := nn.Load(filepath.Join("..", "nn", "testdata", "models", "llama3", "bf16"), b)
		if err != nil {
			t.Fatal(err)
		}
		logits, err := m.Logits(batch, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		if i == 0 {
			first = logits
		} else if !slices.Equal(logits, first) {
			t.Fatalf("load %d computed other logits", i+1)
		}
	}
}

// TestLongWorkIsSplit: work between two waits is committed in command
// buffers of at most 1024 dispatches, and the one wait covers them all.
func TestLongWorkIsSplit(t *testing.T) {
	b := open(t)
	x := b.NewTensor(hf.F32, 1, 4)
	one := b.NewTensor(hf.F32, 1, 4)
	b.Fill(one, 1)
	before := b.Stats()
	for range 2500 {
		b.Add(x, x, one)
	}
	got := make([]float32, 4)
	if err := b.Download(got, x); err != nil {
		t.Fatal(err)
	}
	after := b.Stats()
	if got[0] != 2500 || after.CommandBuffers-before.CommandBuffers != 3 || after.Waits-before.Waits != 1 {
		t.Errorf("x = %v after 2500 additions; %d command buffers and %d waits, want 3 and 1",
			got, after.CommandBuffers-before.CommandBuffers, after.Waits-before.Waits)
	}
}

// TestModelShapesMatchCPU: models of the head dimensions and GQA ratios of
// real checkpoints (Qwen2.5's 64 and 128, ratios 1, 2 and 7), with random
// weights, give the CPU backend's logits and LoRA gradients on the Metal
// backend: the full path through every attention instantiation.
func TestModelShapesMatchCPU(t *testing.T) {
	for _, c := range []struct{ heads, kvHeads, headDim int }{{7, 1, 64}, {4, 2, 128}, {2, 2, 32}} {
		cfg := &hf.Config{Arch: "qwen2", VocabSize: 300, Hidden: 96, Intermediate: 160, Layers: 2, Heads: c.heads, KVHeads: c.kvHeads,
			HeadDim: c.headDim, RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositions: 256, AttentionBias: true, BOS: -1, EOS: []int{0}}
		t.Run(fmt.Sprintf("d%d-gqa%d", c.headDim, c.heads/c.kvHeads), func(t *testing.T) {
			batch := &nn.TrainBatch{}
			for s, n := range []int{37, 20} {
				batch.Segs = append(batch.Segs, nn.Segment{Q: len(batch.IDs), N: n, KV: len(batch.IDs)})
				for i := range n {
					batch.IDs = append(batch.IDs, int32((i*31+s*7)%300))
					batch.Pos = append(batch.Pos, int32(i))
				}
			}
			batch.Labels = batch.IDs
			run := func(b nn.Backend) (logits, grads []float32) {
				m, err := nn.FromWeights(cfg, hf.RandomWeights(cfg, 5), b)
				if err != nil {
					t.Fatal(err)
				}
				if logits, err = m.Logits(&batch.Batch, nil, nil); err != nil {
					t.Fatal(err)
				}
				ad, err := lora.New(m, lora.Spec{Rank: 8, Alpha: 16, Targets: lora.AllLinear}, rand.New(rand.NewPCG(1, 2)))
				if err != nil {
					t.Fatal(err)
				}
				// LoRA weights within ±0.06 keep the problem well
				// conditioned: at ±0.3 this random model's attention is so
				// sharp that a one-ulp change of the weights moves the CPU's
				// own gradients by 1.6e-4 relative (measured), and any two
				// summation orders differ by that much.
				params := make([]float32, ad.Params.Len())
				for i := range params {
					params[i] = float32(0.01 * (float64(i%13) - 6))
				}
				m.B.Upload(ad.Params, params)
				loss := m.B.NewTensor(hf.F32, 1, 1)
				if _, err := m.NewTrainer().LossAndGrad(batch, ad, 1, 3, loss); err != nil {
					t.Fatal(err)
				}
				grads = make([]float32, ad.Grads.Len())
				if err := m.B.Download(grads, ad.Grads); err != nil {
					t.Fatal(err)
				}
				return logits, grads
			}
			wl, wg := run(cpu.Backend{})
			gl, gg := run(open(t))
			// float32 on both sides in different summation orders: logits
			// agree to ~1e-6 (as the golden fixtures); gradients are sums
			// over 57 tokens of products of such values, ~1e-5 relative to
			// the largest.
			if d := maxDiff(gl, wl); d > 1e-4 {
				t.Errorf("logits differ by %.3g", d)
			}
			scale := 0.0
			for _, g := range wg {
				scale = max(scale, math.Abs(float64(g)))
			}
			if d := maxDiff(gg, wg); d > 1e-4*scale {
				t.Errorf("gradients differ by %.3g (largest %.3g)", d, scale)
			}
			t.Logf("logits Δ %.2g, gradients Δ %.2g of %.3g", maxDiff(gl, wl), maxDiff(gg, wg), scale)
		})
	}
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	if math.IsNaN(d) || len(a) != len(b) {
		return math.Inf(1)
	}
	return d
}
