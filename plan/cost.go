package plan

import (
	"fmt"

	"github.com/goseal/ttt/hf"
)

// The cost of a SEAL request, phase by phase: the FLOPs its arithmetic
// performs, the bytes it must move between memory and the chip, and its
// peak memory. FLOPs count matrix products only, 2 per multiply-add (a
// product of m×k by k×n is 2mkn); norms, rotations, softmax exponentials,
// dropout and the other elementwise ops are left out (under 1% of a
// block's products at these shapes). Bytes are the least traffic a pass
// can make: every weight read once per pass in the dtype the backend keeps,
// every kept activation written once and read once, nothing assumed to stay
// in a cache from one pass to the next. Both are lower bounds of what a
// real pass does, so the roofline time built from them (Phase.Bound) is a
// lower bound too.
//
// Per token and per block, with hidden H, q width Q = heads·headDim, key and
// value width K = kvHeads·headDim, intermediate I, vocabulary V:
//
//	linear     2·(H·Q + 2·H·K + Q·H + 3·H·I)   the seven products (linearParams)
//	           in the forward pass, the same again in the backward pass
//	           for the input gradients (the base weights are frozen: no
//	           weight gradients)
//	attention  4·headDim·heads per (query, key) pair forward (Q·Kᵀ and P·V);
//	           14·headDim·heads backward (FlashAttention-2's two kernels
//	           recompute S and dP each, then dV, dK and dQ: 7 products)
//	LoRA       2·r·(in+out) per adapted module forward; 6·r·in + 4·r·out
//	           backward (u recomputed, dB, the rank-wide gradient, dA, dx)
//
// and per token whose logits are computed, 2·H·V for the LM head (again in
// training's backward pass). A causal sequence of n tokens has n(n+1)/2
// (query, key) pairs; a decode step at position p has p+1.

// Request is the shape of one SEAL request: the TTT server's keys and flags.
type Request struct {
	Sequences int // train_sequences
	// SeqLen is each training sequence's width in tokens: --max_seq_length
	// with padding "max_length" (SEAL's), which pads every sequence to it.
	SeqLen    int
	Epochs    int // finetune_epochs
	BatchSize int // batch_size
	GradAccum int // gradient_accumulation_steps
	LoRA      LoRA
	Questions int // eval_questions
	PromptLen int // tokens of each question's prompt
	// AnswerLen is the new tokens of each answer (--eval_max_tokens); every
	// answer is taken to run to it.
	AnswerLen int
}

// Validate checks that every size is usable and fits the model's
// positions.
func (r Request) Validate(c *hf.Config) error {
	switch {
	case r.Sequences < 0 || r.Questions < 0 || r.Epochs < 0:
		return fmt.Errorf("sequences %d, questions %d and epochs %d must not be negative", r.Sequences, r.Questions, r.Epochs)
	case r.Sequences > 0 && (r.SeqLen < 2 || r.BatchSize < 1 || r.GradAccum < 1 || r.LoRA.Rank < 1 || len(r.LoRA.Targets) == 0):
		return fmt.Errorf("training needs a sequence length ≥ 2 (got %d), batch size and accumulation ≥ 1 (%d, %d), a rank ≥ 1 (%d) and target modules", r.SeqLen, r.BatchSize, r.GradAccum, r.LoRA.Rank)
	case r.Questions > 0 && (r.PromptLen < 1 || r.AnswerLen < 1):
		return fmt.Errorf("questions need a prompt length and answer length ≥ 1 (got %d, %d)", r.PromptLen, r.AnswerLen)
	case r.Sequences > 0 && r.SeqLen > c.MaxPositions:
		return fmt.Errorf("sequences of %d tokens exceed the model's %d positions", r.SeqLen, c.MaxPositions)
	case r.Questions > 0 && r.PromptLen+r.AnswerLen > c.MaxPositions:
		return fmt.Errorf("prompts of %d tokens with %d answer tokens exceed the model's %d positions", r.PromptLen, r.AnswerLen, c.MaxPositions)
	}
	return nil
}

// Phase is one phase of a request.
type Phase struct {
	Name   string
	Passes int     // forward passes (training: forward+backward; optimizer: steps)
	FLOPs  float64 // matrix-product FLOPs
	Bytes  float64 // least memory traffic
	Peak   int64   // peak memory during the phase, weights included
}

// Bound is the phase's roofline lower bound on chip c in seconds:
// max(FLOPs / peak FLOPS, bytes / bandwidth). The Metal kernels multiply in
// float32 (bf16 weights are widened as they are loaded), so the peak is the
// chip's float32 rate.
func (ph Phase) Bound(c Chip) float64 { return max(ph.computeTime(c), ph.memoryTime(c)) }

// ComputeBound reports whether compute, not memory traffic, sets the
// phase's bound on c.
func (ph Phase) ComputeBound(c Chip) bool { return ph.computeTime(c) >= ph.memoryTime(c) }

func (ph Phase) computeTime(c Chip) float64 { return ph.FLOPs / (c.FP32TFLOPS * 1e12) }
func (ph Phase) memoryTime(c Chip) float64  { return ph.Bytes / (c.BandwidthGBs * 1e9) }

// Estimate is the cost of a request, phase by phase.
type Estimate struct {
	Phases []Phase
	// Group is how many questions are answered together.
	Group int
	// Steps and Micro are the optimizer steps and micro-batches of training.
	Steps, Micro int
	// Recompute reports whether training recomputes activations to fit the
	// budget (see Plan.Checkpoint).
	Recompute bool
	// Peak is the largest phase peak; Fits whether it is within the model's
	// weights plus the budget.
	Peak int64
	Fits bool
}

// Total is the sum of the phases' FLOPs, bytes and passes, with the
// request's peak.
func (e Estimate) Total() Phase {
	t := Phase{Name: "total", Peak: e.Peak}
	for _, ph := range e.Phases {
		t.Passes += ph.Passes
		t.FLOPs += ph.FLOPs
		t.Bytes += ph.Bytes
	}
	return t
}

// Bound is the request's roofline lower bound on chip c in seconds: the sum
// of its phases' bounds, as phases run one after another.
func (e Estimate) Bound(c Chip) float64 {
	var s float64
	for _, ph := range e.Phases {
		s += ph.Bound(c)
	}
	return s
}

// linearParams is one block's linear weights: Σ out·in over the seven
// modules.
func linearParams(c *hf.Config) float64 {
	var n float64
	for mod := range hf.NumModules {
		out, in := c.LinearShape(mod)
		n += float64(out) * float64(in)
	}
	return n
}

// loraBackwardFLOPs is the adapter's backward FLOPs per token:
// Σ (6·r·in + 4·r·out) over adapted modules and blocks.
func loraBackwardFLOPs(c *hf.Config, a LoRA) float64 {
	var n float64
	for _, mod := range a.Targets {
		out, in := c.LinearShape(mod)
		n += 6*float64(a.Rank)*float64(in) + 4*float64(a.Rank)*float64(out)
	}
	return float64(a.layers(c)) * n
}

// attnPairFLOPs is attention's forward FLOPs per (query, key) pair over all
// blocks: 4 · headDim · heads · layers.
func attnPairFLOPs(c *hf.Config) float64 {
	return 4 * float64(c.HeadDim) * float64(c.Heads) * float64(c.Layers)
}

// blockWeightBytes is every block's parameters in the backend's weight
// size: what a pass through the blocks reads.
func (m Model) blockWeightBytes() float64 {
	return float64(m.Cfg.Layers) * float64(BlockParams(m.Cfg)) * float64(m.WeightSize())
}

// headWeightBytes is the final norm and the LM head (vocab · hidden) in the
// backend's weight size.
func (m Model) headWeightBytes() float64 {
	c := m.Cfg
	return (float64(c.Hidden) + float64(c.VocabSize)*float64(c.Hidden)) * float64(m.WeightSize())
}

// passWeightBytes is what one forward pass reads of the weights besides the
// embedding rows: the blocks and the head.
func (m Model) passWeightBytes() float64 { return m.blockWeightBytes() + m.headWeightBytes() }

// generation returns the prefill and decode phases of answering q prompts
// of p tokens with a new tokens each, in groups of g, with adapter ad
// (LoRA{} for none); peak is the phases' peak memory.
func (pl *Plan) generation(name string, q, p, a, g int, ad LoRA, peak int64) (prefill, decode Phase) {
	c, m := pl.Cfg, pl.Model
	H, V := float64(c.Hidden), float64(c.VocabSize)
	ws := float64(m.WeightSize())
	kvb := float64(KVBytesPerToken(c))
	adParams := float64(ad.Params(c))
	// A token's block and adapter products; attention's pairs and the
	// head's products are added separately.
	tokFLOPs := 2*linearParams(c)*float64(c.Layers) + 2*adParams
	head := 2 * H * V

	// Prefill: whole prompts, at most prefillTokens tokens a pass (at least
	// one prompt), each pass reading the weights and the adapter once; the
	// prompts' keys and values written, then read by attention; each
	// prompt's last row of logits written and read by the sampler.
	perPass := max(1, prefillTokens/p)
	passes := 0
	for left := q; left > 0; left -= g {
		passes += (min(g, left) + perPass - 1) / perPass
	}
	Q, P := float64(q), float64(p)
	prefill = Phase{Name: name + " prefill", Passes: passes, Peak: peak,
		FLOPs: Q*P*tokFLOPs + Q*P*(P+1)/2*attnPairFLOPs(c) + Q*head,
		Bytes: float64(passes)*(m.passWeightBytes()+4*adParams) + Q*P*H*ws + 2*Q*P*kvb + 2*Q*V*4}

	// Decode: a-1 steps per group (the first token comes from the prefill);
	// step t feeds each row the token at position p+t-1, which sees p+t
	// keys. Each step reads the weights, the adapter and every row's keys
	// and values, writes the new ones, and writes and reads the logits.
	groups := (q + g - 1) / g
	steps := groups * (a - 1)
	A := float64(a)
	keys := Q * ((A-1)*P + A*(A-1)/2) // Σ over rows and steps of the keys seen
	rows := Q * (A - 1)
	decode = Phase{Name: name + " decode", Passes: steps, Peak: peak,
		FLOPs: rows*(tokFLOPs+head) + keys*attnPairFLOPs(c),
		Bytes: float64(steps)*(m.passWeightBytes()+4*adParams) + rows*H*ws + keys*kvb + rows*kvb + 2*rows*V*4}
	return prefill, decode
}

// microBatches returns the optimizer steps of training n sequences and the
// sizes of the micro-batches they run, as lora.Train walks them: epochs of
// ceil(n/batch) micro-batches (the last one short), grouped in windows of
// accum, until epochs · max(floor(batches/accum), 1) steps are taken.
func microBatches(n, batch, accum, epochs int) (steps int, sizes []int) {
	batches := (n + batch - 1) / batch
	total := epochs * max(batches/accum, 1)
	for e := 0; e < epochs && steps < total; e++ {
		for w0 := 0; w0 < batches && steps < total; w0 += accum {
			for b := w0; b < min(w0+accum, batches); b++ {
				sizes = append(sizes, min(batch, n-b*batch))
			}
			steps++
		}
	}
	return steps, sizes
}

// Estimate plans request r phase by phase: baseline generation (prefill and
// decode), training (forward and backward passes, then the optimizer
// steps), and generation with the adapter. Questions are answered in
// groups (GroupSize) and training recomputes activations when it must
// (Checkpoint); an estimate that does not fit the budget says so in Fits,
// and one with no group that fits is an error. Without training there is
// no adapted generation.
func (pl *Plan) Estimate(r Request) (Estimate, error) {
	if err := r.Validate(pl.Cfg); err != nil {
		return Estimate{}, err
	}
	c, m := pl.Cfg, pl.Model
	w := m.WeightBytes()
	var e Estimate
	if r.Questions > 0 {
		if e.Group = pl.GroupSize(r.Questions, r.PromptLen, r.AnswerLen); e.Group == 0 {
			return e, fmt.Errorf("one question of %d prompt tokens and %d answer tokens needs %s, over the budget of %s",
				r.PromptLen, r.AnswerLen, FormatBytes(pl.GenerateBytes(1, r.PromptLen, r.AnswerLen)), FormatBytes(pl.Budget))
		}
		genPeak := w + pl.GenerateBytes(e.Group, r.PromptLen, r.AnswerLen)
		pre, dec := pl.generation("baseline", r.Questions, r.PromptLen, r.AnswerLen, e.Group, LoRA{}, genPeak)
		e.Phases = append(e.Phases, pre, dec)
	}
	trains := r.Sequences > 0 && r.Epochs > 0
	if trains {
		e.Phases = append(e.Phases, pl.training(r, &e)...)
	}
	if r.Questions > 0 && trains {
		// The adapter, its gradients and AdamW's moments are still held.
		genPeak := w + pl.GenerateBytes(e.Group, r.PromptLen, r.AnswerLen) + 16*r.LoRA.Params(c)
		pre, dec := pl.generation("adapted", r.Questions, r.PromptLen, r.AnswerLen, e.Group, r.LoRA, genPeak)
		e.Phases = append(e.Phases, pre, dec)
	}
	for _, ph := range e.Phases {
		e.Peak = max(e.Peak, ph.Peak)
	}
	e.Fits = e.Peak-w <= pl.Budget
	return e, nil
}

// training returns the training phases of r and records its step counts
// and recomputation choice in e.
//
// A micro-batch of rows sequences of width W, T = rows·W tokens, costs
//
//	FLOPs  T·(4·layers·linearParams + 2·adapter + loraBackward + 4·H·V)
//	       + rows·W(W+1)/2 · (4 + 14)·headDim·heads·layers
//	       and, with recomputation, the blocks' forward products again:
//	       T·(2·layers·linearParams + 2·adapter) + rows·W(W+1)/2·4·headDim·heads·layers
//	bytes  the blocks' weights read forward and backward (three times
//	       with recomputation) and the head's twice + the embedding rows + the kept activations
//	       written and read (with recomputation: the blocks' inputs, and
//	       each block's activations once more) + the logits written by the
//	       head's product, read and overwritten by the loss, read by the
//	       backward product (4·T·V·4) + the adapter read forward and
//	       backward and its gradients updated (16 bytes per parameter)
//
// and an optimizer step costs 16 FLOPs per adapter parameter (elementwise:
// the gradient's sum of squares, the clip, the two moments, the
// bias-corrected update) and 36 bytes per parameter: the gradients zeroed
// (4) and summed (4), then AdamW reading parameters, gradients and both
// moments (16) and writing all but the gradients (12).
func (pl *Plan) training(r Request, e *Estimate) []Phase {
	c, m := pl.Cfg, pl.Model
	w := m.WeightBytes()
	H, V := float64(c.Hidden), float64(c.VocabSize)
	ws := float64(m.WeightSize())
	ad := float64(r.LoRA.Params(c))
	rows := min(r.BatchSize, r.Sequences)
	micro := Micro{Rows: rows, Width: r.SeqLen, LoRA: r.LoRA}
	var need int64
	e.Recompute, need = pl.Checkpoint(micro)
	var sizes []int
	e.Steps, sizes = microBatches(r.Sequences, r.BatchSize, r.GradAccum, r.Epochs)
	e.Micro = len(sizes)

	W := float64(r.SeqLen)
	lin := 2 * linearParams(c) * float64(c.Layers)
	block := float64(keptFloats(c, false)) * 4
	passes := 2.0
	if e.Recompute {
		passes = 3
		block = float64(c.Layers) * (H + float64(blockActFloats(c))) * 4
	}
	train := Phase{Name: "training fwd+bwd", Passes: len(sizes), Peak: w + need}
	for _, n := range sizes {
		T := float64(n) * W
		pairs := float64(n) * W * (W + 1) / 2
		fwd := T*(lin+2*ad) + pairs*attnPairFLOPs(c)
		bwd := T*(lin+loraBackwardFLOPs(c, r.LoRA)) + pairs*attnPairFLOPs(c)*14/4
		head := 4 * T * H * V
		train.FLOPs += fwd + bwd + head
		if e.Recompute {
			train.FLOPs += fwd
		}
		train.Bytes += passes*m.blockWeightBytes() + 2*m.headWeightBytes() + T*H*ws + 2*T*block + 4*T*V*4 + 16*ad
	}
	opt := Phase{Name: "optimizer", Passes: e.Steps, Peak: w + 16*r.LoRA.Params(c),
		FLOPs: float64(e.Steps) * 16 * ad, Bytes: float64(e.Steps) * 36 * ad}
	return []Phase{train, opt}
}
