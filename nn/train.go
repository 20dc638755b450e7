package nn

import (
	"fmt"

	"github.com/goseal/ttt/hf"
)

// TrainBatch is one micro-batch for training: rows grouped into sequences by
// Segs (each with Past 0 and KV equal to Q), and Labels as Hugging Face
// writes them: one per row, unshifted, -100 where ignored. Row r of a
// sequence is trained to predict Labels[r+1].
type TrainBatch struct {
	Batch
	Labels []int32
}

// Trainer runs training passes (forward, loss, backward) of one model and
// keeps their buffers between steps.
//
// With Checkpoint set, the forward pass keeps only each block's input, and
// the backward pass recomputes a block's activations from it just before
// going back through the block: one more forward pass of compute for
// activations of one block instead of all of them. Results are the same.
type Trainer struct {
	Checkpoint bool

	m       *Model
	ws      *workspace
	acts    []blockActs // per block, unused with Checkpoint (one block's, shared, is scratch then)
	inputs  []*Tensor   // with Checkpoint, each block's input
	targets []int32
	pass    pass
}

// NewTrainer returns a Trainer for m.
func (m *Model) NewTrainer() *Trainer {
	t := &Trainer{m: m, ws: newWorkspace(m.B), acts: make([]blockActs, len(m.Blocks))}
	for l := range t.acts {
		t.acts[l].prefix = fmt.Sprintf("b%d.", l)
	}
	return t
}

// Free gives the trainer's buffers back to the backend; the trainer must not
// be used after.
func (t *Trainer) Free() { t.ws.free() }

// Targets returns the next-token targets of a batch: Labels shifted left by
// one within each sequence, -100 on each sequence's last row.
func (b *TrainBatch) Targets(dst []int32) []int32 {
	dst = dst[:0]
	for range b.IDs {
		dst = append(dst, -100)
	}
	for _, s := range b.Segs {
		for i := 0; i+1 < s.N; i++ {
			dst[s.Q+i] = b.Labels[s.Q+i+1]
		}
	}
	return dst
}

// LossAndGrad runs the batch forward and backward with adapter ad. It adds
// the summed next-token cross-entropy to loss (1×1, on the device), adds
// gradScale times the gradient of that sum to every LoRA's GradA and GradB,
// and returns the number of predicted tokens. Base weights are only read.
// dropoutSeed seeds the LoRA dropout masks. Nothing is read back: the host
// does not wait here.
func (t *Trainer) LossAndGrad(b *TrainBatch, ad *Adapter, gradScale float32, dropoutSeed uint64, loss *Tensor) (int, error) {
	m, B, ws := t.m, t.m.B, t.ws
	cfg := m.Config
	if len(b.Labels) != len(b.IDs) {
		return 0, fmt.Errorf("batch has %d ids but %d labels", len(b.IDs), len(b.Labels))
	}
	for _, s := range b.Segs {
		if s.Past != 0 || s.KV != s.Q {
			return 0, fmt.Errorf("training segment %+v must start at position 0 over its own rows", s)
		}
	}
	if err := m.validate(&b.Batch, len(b.IDs)); err != nil {
		return 0, err
	}
	T, H, V := len(b.IDs), cfg.Hidden, cfg.VocabSize
	t.targets = b.Targets(t.targets)
	count := 0
	for _, l := range t.targets {
		if l >= 0 {
			if int(l) >= V {
				return 0, fmt.Errorf("label %d is outside the vocabulary (%d)", l, V)
			}
			count++
		}
	}
	p := &t.pass
	m.upload(p, ws, &b.Batch)
	targets := ws.upload("targets", t.targets)

	// Forward, keeping each block's activations (or, checkpointing, its
	// input, the one block's worth of activations being scratch).
	x := ws.get("x", T, H)
	B.Embed(x, m.Embed, p.ids)
	seed := func(l int) uint64 { return dropoutSeed + uint64(l)*uint64(hf.NumModules) }
	shared := blockActs{prefix: "ckpt."}
	t.inputs = t.inputs[:0]
	for l := range m.Blocks {
		if t.Checkpoint {
			in := ws.get(fmt.Sprintf("b%d.in", l), T, H)
			B.Copy(in, x)
			t.inputs = append(t.inputs, in)
			shared.dropSeed = seed(l)
			m.blockForward(ws, l, x, p, ad, &shared)
			continue
		}
		t.acts[l].dropSeed = seed(l)
		m.blockForward(ws, l, x, p, ad, &t.acts[l])
	}

	// Head: final norm, logits and cross-entropy in chunks of rows so the
	// rows × vocab logits never exist all at once; dxn gets their gradient.
	xn := ws.get("final.xn", T, H)
	dxn := ws.get("final.dxn", T, H)
	losses := ws.get("final.losses", T, 1)
	B.RMSNorm(xn, x, m.Norm, cfg.RMSNormEps)
	chunk := max(16, min(T, (16<<20)/V))
	for r0 := 0; r0 < T; r0 += chunk {
		r1 := min(r0+chunk, T)
		logits := ws.get("final.logits", r1-r0, V)
		B.MatMul(logits, xn.Slice(r0, r1), m.LMHead, false, true, 1, false)
		B.CrossEntropy(logits, losses.Slice(r0, r1), logits, targets.Slice(r0, r1), gradScale)
		B.MatMul(dxn.Slice(r0, r1), logits, m.LMHead, false, false, 1, false)
	}
	B.Sum(loss, losses, true)
	dx := ws.get("dx", T, H)
	B.RMSNormBackward(dx, dxn, x, m.Norm, cfg.RMSNormEps)

	// Backward through the blocks, last to first; dx is the gradient of the
	// residual stream. The embedding table is frozen: the gradient stops here.
	for l := len(m.Blocks) - 1; l >= 0; l-- {
		if t.Checkpoint {
			xl := ws.get("ckpt.xin", T, H)
			B.Copy(xl, t.inputs[l])
			shared.dropSeed = seed(l)
			m.blockForward(ws, l, xl, p, ad, &shared)
			m.blockBackward(ws, l, dx, p, ad, &shared)
			continue
		}
		m.blockBackward(ws, l, dx, p, ad, &t.acts[l])
	}
	return count, nil
}
