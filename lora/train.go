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
	// Checkpoint recomputes each block's activations in the backward pass
	// instead of keeping them (nn.Trainer.Checkpoint): same results, less
	// memory, one more forward pass of compute.
	Checkpoint bool
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
	opt := newAdamW(m.B, ad, p.MaxGradNorm)
	defer opt.free()
	tr := m.NewTrainer()
	tr.Checkpoint = p.Checkpoint
	defer tr.Free()
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
			m.B.Fill(ad.Grads, 0)
			m.B.Fill(opt.loss, 0)
			tokens := 0
			for b := w0; b < w1; b++ {
				rows = rows[:0]
				for _, idx := range order[b*p.BatchSize : min((b+1)*p.BatchSize, len(order))] {
					rows = append(rows, exs[idx])
				}
				tb := d.batch(rows)
				tokens += len(tb.IDs)
				seed := p.Seed ^ uint64(len(steps)+1)<<20 ^ uint64(b)<<8
				if _, err := tr.LossAndGrad(tb, ad, float32(1/float64(items)), seed, opt.loss); err != nil {
					return steps, fmt.Errorf("step %d: %w", len(steps)+1, err)
				}
			}
			t := len(steps) + 1
			lr := p.LR * float64(total-t+1) / float64(total)
			loss, norm, err := opt.step(lr)
			if err != nil {
				return steps, fmt.Errorf("step %d: %w", t, err)
			}
			loss /= float64(items)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return steps, fmt.Errorf("step %d: the loss is not finite (%g)", t, loss)
			}
			if math.IsNaN(norm) || math.IsInf(norm, 0) {
				return steps, fmt.Errorf("step %d: the gradient norm is not finite (%g)", t, norm)
			}
			s := Step{Step: t, Steps: total, LR: lr, Loss: loss, GradNorm: norm, Tokens: tokens, Elapsed: time.Since(start)}
			steps = append(steps, s)
			if progress != nil {
				progress(s)
			}
		}
	}
	return steps, nil
}

// adamW is torch.optim.AdamW over an adapter's parameters (all of them one
// flat tensor), with the Trainer's global-norm gradient clipping. Its loss
// and squared gradient norm live on the device; step reads both back, the
// one host read of an optimizer step.
type adamW struct {
	b       nn.Backend
	ad      *nn.Adapter
	m, v    *nn.Tensor
	stats   *nn.Tensor // loss sum, then the gradients' sum of squares
	loss    *nn.Tensor // stats[0]
	sumSq   *nn.Tensor // stats[1]
	maxNorm float64
	t       int
	host    [2]float32
}

func newAdamW(b nn.Backend, ad *nn.Adapter, maxNorm float64) *adamW {
	n := ad.Params.Len()
	o := &adamW{b: b, ad: ad, m: b.NewTensor(hf.F32, n, 1), v: b.NewTensor(hf.F32, n, 1), stats: b.NewTensor(hf.F32, 2, 1), maxNorm: maxNorm}
	o.loss, o.sumSq = o.stats.Slice(0, 1), o.stats.Slice(1, 2)
	return o
}

// free gives the optimizer's state back to the backend.
func (o *adamW) free() {
	o.b.Free(o.m)
	o.b.Free(o.v)
	o.b.Free(o.stats)
}

// step clips the gradients to the global norm maxNorm (with torch's 1e-6
// guard) inside the update, applies AdamW at learning rate lr, and returns
// the window's summed loss and the gradient norm before clipping.
func (o *adamW) step(lr float64) (loss, norm float64, err error) {
	o.t++
	o.b.SumSquares(o.sumSq, o.ad.Grads)
	h := nn.AdamWParams{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0, Step: o.t, MaxGradNorm: o.maxNorm}
	o.b.AdamW(o.ad.Params, o.ad.Grads, o.m, o.v, h, o.sumSq)
	if err := o.b.Download(o.host[:], o.stats); err != nil {
		return 0, 0, err
	}
	return float64(o.host[0]), math.Sqrt(float64(o.host[1])), nil
}
