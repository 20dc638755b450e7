package lora

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// Params are the optimisation hyperparameters, with the Trainer's meaning.
type Params struct {
	Epochs      int
	LR          float64
	BatchSize   int
	GradAccum   int
	MaxGradNorm float64 // global-norm clipping; the Trainer's default is 1.0
	Shuffle     bool    // reshuffle the examples every epoch
	Seed        uint64  // shuffling and dropout
}

// Validate checks the hyperparameters.
func (p Params) Validate() error {
	switch {
	case p.Epochs < 0 || p.Epochs > 100000:
		return fmt.Errorf("finetune_epochs %d must be between 0 and 100000", p.Epochs)
	case !(p.LR >= 0) || math.IsInf(p.LR, 0):
		return fmt.Errorf("finetune_lr %g must be a finite number ≥ 0", p.LR)
	case p.BatchSize < 1 || p.BatchSize > 4096:
		return fmt.Errorf("batch_size %d must be between 1 and 4096", p.BatchSize)
	case p.GradAccum < 1 || p.GradAccum > 4096:
		return fmt.Errorf("gradient_accumulation_steps %d must be between 1 and 4096", p.GradAccum)
	case !(p.MaxGradNorm > 0):
		return fmt.Errorf("max grad norm %g must be positive", p.MaxGradNorm)
	}
	return nil
}

// Steps returns the number of optimizer steps for n examples, the length of
// the learning-rate schedule, as transformers 4.52.4's Trainer counts them:
// epochs × max(floor(ceil(n / batch) / accumulation), 1). An epoch runs
// ceil(batches / accumulation) windows (the last one shorter), and training
// stops once Steps are taken, so when the accumulation does not divide the
// batches the last epochs are cut short.
func (p Params) Steps(n int) int {
	batches := (n + p.BatchSize - 1) / p.BatchSize
	return p.Epochs * max(batches/p.GradAccum, 1)
}

// Step reports one optimizer step.
type Step struct {
	Step, Steps int
	LR          float64 // the learning rate this step used
	Loss        float64 // the window's mean loss per counted label
	GradNorm    float64 // global gradient norm before clipping
	Tokens      int     // rows × width processed in the window, pads included
	Elapsed     time.Duration
}

// Train fine-tunes ad on the examples and returns every step's report; it
// calls progress (if not nil) after each step. Only ad changes. A loss or
// gradient that is not finite stops training with an error.
func Train(ctx context.Context, m *nn.Model, ad *nn.Adapter, exs []Example, d Data, p Params, progress func(Step)) ([]Step, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(exs) == 0 || p.Epochs == 0 {
		return nil, nil
	}
	opt := newAdamW(m.B, ad)
	tr := m.NewTrainer()
	total := p.Steps(len(exs))
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	start := time.Now()
	var steps []Step
	rows := make([]Example, 0, p.BatchSize)
	for epoch := 0; epoch < p.Epochs && len(steps) < total; epoch++ {
		if p.Shuffle {
			rng := rand.New(rand.NewPCG(p.Seed, uint64(epoch)))
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		batches := (len(order) + p.BatchSize - 1) / p.BatchSize
		for w0 := 0; w0 < batches && len(steps) < total; w0 += p.GradAccum {
			if err := ctx.Err(); err != nil {
				return steps, err
			}
			w1 := min(w0+p.GradAccum, batches)
			window := order[w0*p.BatchSize : min(w1*p.BatchSize, len(order))]
			windowEx := make([]Example, len(window))
			for i, idx := range window {
				windowEx[i] = exs[idx]
			}
			items := d.countLabels(windowEx)
			opt.zeroGrad()
			var loss float64
			tokens := 0
			for b := w0; b < w1; b++ {
				rows = rows[:0]
				for _, idx := range order[b*p.BatchSize : min((b+1)*p.BatchSize, len(order))] {
					rows = append(rows, exs[idx])
				}
				tb := d.batch(rows)
				tokens += len(tb.IDs)
				seed := p.Seed ^ uint64(len(steps)+1)<<20 ^ uint64(b)<<8
				l, _, err := tr.LossAndGrad(tb, ad, float32(1/float64(items)), seed)
				if err != nil {
					return steps, fmt.Errorf("step %d: %w", len(steps)+1, err)
				}
				loss += l
			}
			loss /= float64(items)
			t := len(steps) + 1
			lr := p.LR * float64(total-t+1) / float64(total)
			norm := opt.clip(p.MaxGradNorm)
			if math.IsNaN(norm) || math.IsInf(norm, 0) {
				return steps, fmt.Errorf("step %d: the gradient norm is not finite (%g)", t, norm)
			}
			opt.step(lr)
			s := Step{Step: t, Steps: total, LR: lr, Loss: loss, GradNorm: norm, Tokens: tokens, Elapsed: time.Since(start)}
			steps = append(steps, s)
			if progress != nil {
				progress(s)
			}
		}
	}
	return steps, m.B.Sync()
}

// adamW is torch.optim.AdamW over an adapter's A and B matrices.
type adamW struct {
	b      nn.Backend
	params []param
	t      int
}

type param struct{ w, g, m, v *nn.Tensor }

func newAdamW(b nn.Backend, ad *nn.Adapter) *adamW {
	o := &adamW{b: b}
	each(ad, func(_ int, _ hf.Module, lo *nn.LoRA) {
		for _, p := range [][2]*nn.Tensor{{lo.A, lo.GradA}, {lo.B, lo.GradB}} {
			o.params = append(o.params, param{w: p[0], g: p[1], m: b.NewTensor(p[0].Rows, p[0].Cols), v: b.NewTensor(p[0].Rows, p[0].Cols)})
		}
	})
	return o
}

func (o *adamW) zeroGrad() {
	for _, p := range o.params {
		o.b.Scale(p.g, 0)
	}
}

// clip scales the gradients so their global norm is at most maxNorm (with
// torch's 1e-6 guard) and returns the norm before clipping.
func (o *adamW) clip(maxNorm float64) float64 {
	var ss float64
	for _, p := range o.params {
		ss += o.b.SumSquares(p.g)
	}
	norm := math.Sqrt(ss)
	if coef := maxNorm / (norm + 1e-6); coef < 1 {
		for _, p := range o.params {
			o.b.Scale(p.g, float32(coef))
		}
	}
	return norm
}

func (o *adamW) step(lr float64) {
	o.t++
	h := nn.AdamWParams{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0, Step: o.t}
	for _, p := range o.params {
		o.b.AdamW(p.w, p.g, p.m, p.v, h)
	}
}
