package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/gpu"
	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/nn"
)

// ModelCheck is one model-level comparison of this backend with the CPU
// backend on the built-in model: what was compared, the largest
// difference, the tolerance it must stay within, and an error if the run
// itself failed.
type ModelCheck struct {
	Name   string
	MaxErr float64
	Tol    float64
	Err    error
}

// Pass reports whether the check ran and stayed within its tolerance.
func (c ModelCheck) Pass() bool { return c.Err == nil && c.MaxErr <= c.Tol }

// CheckModel runs the built-in model (4 layers, hidden 128, float32 weights)
// on b and on the CPU backend and compares the logits of a prompt, a greedy
// generation and a LoRA training step (loss and updated adapter), as
// `seal-ttt doctor` reports them.
func CheckModel(b *gpu.Backend) []ModelCheck {
	gm, cm := nn.Builtin(b), nn.Builtin(cpu.Backend{})
	prompt := []int32{72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100}
	batch := &nn.Batch{IDs: prompt, Segs: []nn.Segment{{N: len(prompt)}}}
	for i := range prompt {
		batch.Pos = append(batch.Pos, int32(i))
	}
	var out []ModelCheck

	// Logits: both sides sum products of float32 values in different orders
	// over widths ≤ 512; with logits of magnitude ≲ 5 that differs by ~1e-6,
	// so 1e-4 passes rounding and fails any wrong op.
	c := ModelCheck{Name: "logits of a 12-token prompt", Tol: 1e-4}
	got, err := gm.Logits(batch, nil, nil)
	want, _ := cm.Logits(batch, nil, nil)
	if c.Err = err; err == nil {
		c.MaxErr = maxDiff(got, want)
	}
	out = append(out, c)

	// Greedy decoding must pick the same tokens: 0 tokens may differ.
	c = ModelCheck{Name: "greedy generation, 3 prompts × 16 tokens (tokens that differ)", Tol: 0}
	prompts := [][]int32{prompt, {1, 2, 3}, {200, 201, 202, 203, 204}}
	opts := nn.GenerateOptions{MaxNewTokens: 16}
	g, err := gm.Generate(context.Background(), prompts, nil, opts)
	w, _ := cm.Generate(context.Background(), prompts, nil, opts)
	if c.Err = err; err == nil {
		for i := range w {
			for j := range w[i] {
				if j >= len(g[i]) || g[i][j] != w[i][j] {
					c.MaxErr++
				}
			}
		}
	}
	out = append(out, c)

	// A training step: the loss to 1e-5 relative (the logits' agreement).
	// AdamW's first step moves every element with a gradient by about lr
	// (1e-4) whatever the gradient's size, so an element whose gradient is
	// at rounding level may move either way: the golden tests see a few
	// percent of lr; a wrong update is off by ~lr everywhere, so 0.1·lr.
	loss := ModelCheck{Name: "LoRA training step: loss (relative)", Tol: 1e-5}
	params := ModelCheck{Name: "LoRA training step: adapter after AdamW", Tol: 1e-5}
	step := func(m *nn.Model) (float64, []float32, error) {
		ad, err := lora.New(m, lora.Spec{Rank: 8, Alpha: 16, Targets: lora.AllLinear}, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			return 0, nil, err
		}
		defer ad.Free(m.B)
		d := lora.Data{MaxSeqLength: 32, Padding: lora.MaxLength, PadID: 0}
		ex := lora.MakeExample(slices.Concat(prompt, prompt), d.MaxSeqLength, nil, 0)
		steps, err := lora.Train(context.Background(), m, ad, []lora.Example{ex}, d, lora.Params{Epochs: 1, LR: 1e-4, BatchSize: 1, GradAccum: 1, MaxGradNorm: 1}, nil)
		if err != nil {
			return 0, nil, err
		}
		p := make([]float32, ad.Params.Len())
		return steps[0].Loss, p, m.B.Download(p, ad.Params)
	}
	gl, gp, err := step(gm)
	wl, wp, _ := step(cm)
	if loss.Err, params.Err = err, err; err == nil {
		loss.MaxErr = math.Abs(gl-wl) / wl
		params.MaxErr = maxDiff(gp, wp)
	}
	return append(out, loss, params)
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	return d
}

// String formats a check as doctor prints it.
func (c ModelCheck) String() string {
	r := "pass"
	if !c.Pass() {
		r = "FAIL"
	}
	return fmt.Sprintf("%s\t%.2g\t%.2g\t%s", c.Name, c.MaxErr, c.Tol, r)
}
