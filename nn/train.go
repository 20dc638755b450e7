package nn

import (
	"fmt"
	"math"

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
type Trainer struct {
	m       *Model
	ws      *workspace
	acts    []blockActs
	targets []int32
}

// NewTrainer returns a Trainer for m.
func (m *Model) NewTrainer() *Trainer {
	return &Trainer{m: m, ws: newWorkspace(m.B), acts: make([]blockActs, len(m.Blocks))}
}

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

// LossAndGrad runs the batch forward and backward with adapter ad. It returns
// the summed next-token cross-entropy and the number of predicted tokens, and
// adds gradScale times the gradient of that sum to every LoRA's GradA and
// GradB. Base weights are only read. dropoutSeed seeds the LoRA dropout masks.
func (t *Trainer) LossAndGrad(b *TrainBatch, ad *Adapter, gradScale float32, dropoutSeed uint64) (float64, int, error) {
	m, B, ws := t.m, t.m.B, t.ws
	cfg := m.Config
	if len(b.Labels) != len(b.IDs) {
		return 0, 0, fmt.Errorf("batch has %d ids but %d labels", len(b.IDs), len(b.Labels))
	}
	for _, s := range b.Segs {
		if s.Past != 0 || s.KV != s.Q {
			return 0, 0, fmt.Errorf("training segment %+v must start at position 0 over its own rows", s)
		}
	}
	if err := m.validate(&b.Batch, len(b.IDs)); err != nil {
		return 0, 0, err
	}
	T, H, V := len(b.IDs), cfg.Hidden, cfg.VocabSize
	t.targets = b.Targets(t.targets)
	count := 0
	for _, l := range t.targets {
		if l >= 0 {
			if int(l) >= V {
				return 0, 0, fmt.Errorf("label %d is outside the vocabulary (%d)", l, V)
			}
			count++
		}
	}

	// Forward, keeping each block's activations.
	x := ws.get("x", T, H)
	B.Embed(x, m.Embed, b.IDs)
	for l := range m.Blocks {
		t.acts[l].dropSeed = dropoutSeed + uint64(l)*uint64(hf.NumModules)
		m.block(ws, l, x, &b.Batch, nil, nil, nil, ad, &t.acts[l])
	}

	// Head: final norm, logits and cross-entropy in chunks of rows so the
	// rows × vocab logits never exist all at once; dxn gets their gradient.
	xn := ws.get("final.xn", T, H)
	dxn := ws.get("final.dxn", T, H)
	B.RMSNorm(xn, x, m.Norm, cfg.RMSNormEps)
	chunk := max(16, min(T, (16<<20)/V))
	var loss float64
	for r0 := 0; r0 < T; r0 += chunk {
		r1 := min(r0+chunk, T)
		logits := ws.get("final.logits", r1-r0, V)
		B.MatMul(logits, xn.Slice(r0, r1), m.LMHead, false, true, 1, false)
		loss += B.CrossEntropy(logits, logits, t.targets[r0:r1], gradScale)
		B.MatMul(dxn.Slice(r0, r1), logits, m.LMHead, false, false, 1, false)
	}
	dx := ws.get("dx", T, H)
	B.RMSNormBackward(dx, dxn, x, m.Norm, cfg.RMSNormEps)

	// Backward through the blocks, last to first; dx is the gradient of the
	// residual stream. The embedding table is frozen: the gradient stops here.
	for l := len(m.Blocks) - 1; l >= 0; l-- {
		t.blockBackward(l, dx, &b.Batch, ad)
	}
	if err := B.Sync(); err != nil {
		return 0, 0, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, count, fmt.Errorf("the loss is not finite (%g)", loss)
	}
	return loss, count, nil
}

// blockBackward turns dres, the gradient of block l's output, into the
// gradient of its input (in place), accumulating LoRA gradients on the way.
func (t *Trainer) blockBackward(l int, dres *Tensor, b *Batch, ad *Adapter) {
	m, B, ws := t.m, t.m.B, t.ws
	cfg, blk, a := m.Config, &m.Blocks[l], &t.acts[l]
	T := dres.Rows

	// MLP: out = h + down(silu(gate)·up), gate/up = W·rmsnorm(h).
	xn := ws.get("xn", T, cfg.Hidden)
	B.RMSNorm(xn, a.h, blk.MLPNorm, cfg.RMSNormEps)
	act := ws.get("act", T, cfg.Intermediate)
	B.SiLUMul(act, a.gate, a.up)
	dact := ws.get("dact", T, cfg.Intermediate)
	t.linearBackward(dact, false, dres, act, l, hf.DownProj, ad)
	dgate := ws.get("dgate", T, cfg.Intermediate)
	dup := ws.get("dup", T, cfg.Intermediate)
	B.SiLUMulBackward(dgate, dup, dact, a.gate, a.up)
	dxn := ws.get("dxn", T, cfg.Hidden)
	t.linearBackward(dxn, false, dgate, xn, l, hf.GateProj, ad)
	t.linearBackward(dxn, true, dup, xn, l, hf.UpProj, ad)
	dnorm := ws.get("dnorm", T, cfg.Hidden)
	B.RMSNormBackward(dnorm, dxn, a.h, blk.MLPNorm, cfg.RMSNormEps)
	B.Add(dres, dres, dnorm)

	// Attention: h = x + o(attention(rope(q), rope(k), v)), q/k/v = W·rmsnorm(x) + b.
	datt := ws.get("datt", T, cfg.Heads*cfg.HeadDim)
	t.linearBackward(datt, false, dres, a.att, l, hf.OProj, ad)
	dq := ws.get("dq", T, cfg.Heads*cfg.HeadDim)
	dk := ws.get("dk", T, cfg.KVHeads*cfg.HeadDim)
	dv := ws.get("dv", T, cfg.KVHeads*cfg.HeadDim)
	B.AttentionBackward(dq, dk, dv, datt, a.att, a.lse, a.q, a.k, a.v, b.Segs, cfg.Heads, cfg.KVHeads)
	rope := m.ropeTable(int(maxPos(b.Pos)) + 1)
	B.RoPE(dq, rope, b.Pos, cfg.HeadDim, true)
	B.RoPE(dk, rope, b.Pos, cfg.HeadDim, true)
	B.RMSNorm(xn, a.x, blk.AttnNorm, cfg.RMSNormEps)
	t.linearBackward(dxn, false, dq, xn, l, hf.QProj, ad)
	t.linearBackward(dxn, true, dk, xn, l, hf.KProj, ad)
	t.linearBackward(dxn, true, dv, xn, l, hf.VProj, ad)
	B.RMSNormBackward(dnorm, dxn, a.x, blk.AttnNorm, cfg.RMSNormEps)
	B.Add(dres, dres, dnorm)
}

// linearBackward sets (or, with accumulate, adds to) dx the input gradient of
// module mod of block l for output gradient dy and input x, and adds the
// LoRA's weight gradients: with xd = dropout(x) and u = xd·Aᵀ,
// dB += s·dyᵀ·u, dA += (s·dy·B)ᵀ·xd, dx += mask·((s·dy·B)·A).
func (t *Trainer) linearBackward(dx *Tensor, accumulate bool, dy, x *Tensor, l int, mod hf.Module, ad *Adapter) {
	m, B, ws := t.m, t.m.B, t.ws
	B.MatMul(dx, dy, m.Blocks[l].Linear[mod], false, false, 1, accumulate)
	lo := ad.get(l, mod)
	if lo == nil {
		return
	}
	mask := t.acts[l].drop[mod]
	xd := x
	if mask != nil {
		xd = ws.get("lora.xd", x.Rows, x.Cols)
		B.Mul(xd, x, mask)
	}
	u := ws.get("lora.t", x.Rows, lo.A.Rows)
	B.MatMul(u, xd, lo.A, false, true, 1, false)
	B.MatMul(lo.GradB, dy, u, true, false, lo.Scale, true)
	du := ws.get("lora.du", x.Rows, lo.A.Rows)
	B.MatMul(du, dy, lo.B, false, false, lo.Scale, false)
	B.MatMul(lo.GradA, du, xd, true, false, 1, true)
	if mask == nil {
		B.MatMul(dx, du, lo.A, false, false, 1, true)
		return
	}
	dxd := ws.get("lora.dxd", x.Rows, x.Cols)
	B.MatMul(dxd, du, lo.A, false, false, 1, false)
	B.Mul(dxd, dxd, mask)
	B.Add(dx, dx, dxd)
}
