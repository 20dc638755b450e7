package nn

import (
	"github.com/goseal/ttt/hf"
)

// A transformer block, forward and backward side by side:
//
//	h   = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = rmsnorm(x)
//	out = h + down_proj(silu(gate_proj(n2)) · up_proj(n2)),                         n2 = rmsnorm(h)
//
// Each linear layer may carry a LoRA: y = x·Wᵀ + b + s·(dropout(x)·Aᵀ)·Bᵀ.
// The forward pass keeps in blockActs what the backward pass needs; the
// normalised inputs and the MLP product are recomputed instead of kept.

// blockActs are the activations of one block that the backward pass needs.
type blockActs struct {
	x        *Tensor // block input (residual stream)
	q, k, v  *Tensor // after bias and rotation
	att, lse *Tensor // attention output (before o_proj) and its log-sum-exps
	h        *Tensor // residual stream after attention
	gate, up *Tensor // MLP pre-activations
	dropSeed uint64  // module mod's dropout mask is drawn from dropSeed+mod
	prefix   string  // names the workspace tensors that hold them
}

// pass is one forward pass's rows on the device: token ids and positions
// (I32, one per row), the attention segments, and where keys and values go.
type pass struct {
	ids, pos *Tensor
	segs     []Segment
	rope     *Tensor // the rotary table, covering every position of pos
	// kc/vc are the per-block KV cache and kvRows (I32) the cache rows the
	// batch's keys and values are written to (generation); without a cache
	// (training, Logits) the segments index the batch's own rows.
	kc, vc []*Tensor
	kvRows *Tensor
}

// linearForward sets y = x·Wᵀ (+ bias) (+ the LoRA term) for module mod of
// block l. acts is set when training: then LoRA dropout is drawn.
func (m *Model) linearForward(ws *workspace, y, x *Tensor, l int, mod hf.Module, ad *Adapter, acts *blockActs) {
	blk := &m.Blocks[l]
	m.B.MatMul(y, x, blk.Linear[mod], false, true, 1, false)
	if blk.Bias[mod] != nil {
		m.B.AddBias(y, blk.Bias[mod])
	}
	lo := ad.get(l, mod)
	if lo == nil {
		return
	}
	xd := x
	if acts != nil && lo.Dropout > 0 {
		xd = ws.get("lora.xd", x.Rows, x.Cols)
		m.B.Dropout(xd, x, lo.Dropout, acts.dropSeed+uint64(mod))
	}
	u := ws.get("lora.u", x.Rows, lo.A.Rows)
	m.B.MatMul(u, xd, lo.A, false, true, 1, false)
	m.B.MatMul(y, u, lo.B, false, true, lo.Scale, true)
}

// linearBackward sets (or, with accumulate, adds to) dx the input gradient
// of module mod of block l for output gradient dy and input x, and adds the
// LoRA's weight gradients: with xd = dropout(x) and u = xd·Aᵀ,
// dB += s·dyᵀ·u, dA += (s·dy·B)ᵀ·xd, dx += dropout((s·dy·B)·A).
func (m *Model) linearBackward(ws *workspace, dx *Tensor, accumulate bool, dy, x *Tensor, l int, mod hf.Module, ad *Adapter, acts *blockActs) {
	B := m.B
	B.MatMul(dx, dy, m.Blocks[l].Linear[mod], false, false, 1, accumulate)
	lo := ad.get(l, mod)
	if lo == nil {
		return
	}
	xd, seed := x, acts.dropSeed+uint64(mod)
	if lo.Dropout > 0 {
		xd = ws.get("lora.xd", x.Rows, x.Cols)
		B.Dropout(xd, x, lo.Dropout, seed)
	}
	u := ws.get("lora.u", x.Rows, lo.A.Rows)
	B.MatMul(u, xd, lo.A, false, true, 1, false)
	B.MatMul(lo.GradB, dy, u, true, false, lo.Scale, true)
	du := ws.get("lora.du", x.Rows, lo.A.Rows)
	B.MatMul(du, dy, lo.B, false, false, lo.Scale, false)
	B.MatMul(lo.GradA, du, xd, true, false, 1, true)
	if lo.Dropout == 0 {
		B.MatMul(dx, du, lo.A, false, false, 1, true)
		return
	}
	dxd := ws.get("lora.dxd", x.Rows, x.Cols)
	B.MatMul(dxd, du, lo.A, false, false, 1, false)
	B.Dropout(dxd, dxd, lo.Dropout, seed)
	B.Add(dx, dx, dxd)
}

// attentionForward adds block l's attention sublayer to the residual stream
// x in place. acts, when not nil, receives what attentionBackward needs.
func (m *Model) attentionForward(ws *workspace, l int, x *Tensor, p *pass, ad *Adapter, acts *blockActs) {
	cfg, B, blk := m.Config, m.B, &m.Blocks[l]
	T := x.Rows
	qCols, kvCols := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	name := func(s string) string { return s }
	if acts != nil {
		name = func(s string) string { return acts.prefix + s }
		acts.x = ws.get(name("x"), T, cfg.Hidden)
		B.Copy(acts.x, x)
	}
	xn := ws.get("xn", T, cfg.Hidden)
	q := ws.get(name("q"), T, qCols)
	k := ws.get(name("k"), T, kvCols)
	v := ws.get(name("v"), T, kvCols)
	att := ws.get(name("att"), T, qCols)
	var lse *Tensor
	if acts != nil {
		lse = ws.get(name("lse"), T, cfg.Heads)
	}
	B.RMSNorm(xn, x, blk.AttnNorm, cfg.RMSNormEps)
	m.linearForward(ws, q, xn, l, hf.QProj, ad, acts)
	m.linearForward(ws, k, xn, l, hf.KProj, ad, acts)
	m.linearForward(ws, v, xn, l, hf.VProj, ad, acts)
	B.RoPE(q, p.rope, p.pos, cfg.HeadDim, false)
	B.RoPE(k, p.rope, p.pos, cfg.HeadDim, false)
	keys, values := k, v
	if p.kc != nil {
		B.SetRows(p.kc[l], k, p.kvRows)
		B.SetRows(p.vc[l], v, p.kvRows)
		keys, values = p.kc[l], p.vc[l]
	}
	B.Attention(att, lse, q, keys, values, p.segs, cfg.Heads, cfg.KVHeads)
	o := ws.get("o", T, cfg.Hidden)
	m.linearForward(ws, o, att, l, hf.OProj, ad, acts)
	B.Add(x, x, o)
	if acts != nil {
		acts.q, acts.k, acts.v, acts.att, acts.lse = q, k, v, att, lse
	}
}

// attentionBackward turns dres, the gradient of the attention sublayer's
// output, into the gradient of its input (in place).
func (m *Model) attentionBackward(ws *workspace, l int, dres *Tensor, p *pass, ad *Adapter, a *blockActs) {
	cfg, B, blk := m.Config, m.B, &m.Blocks[l]
	T := dres.Rows
	qCols, kvCols := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	datt := ws.get("datt", T, qCols)
	m.linearBackward(ws, datt, false, dres, a.att, l, hf.OProj, ad, a)
	dq := ws.get("dq", T, qCols)
	dk := ws.get("dk", T, kvCols)
	dv := ws.get("dv", T, kvCols)
	B.AttentionBackward(dq, dk, dv, datt, a.att, a.lse, a.q, a.k, a.v, p.segs, cfg.Heads, cfg.KVHeads)
	B.RoPE(dq, p.rope, p.pos, cfg.HeadDim, true)
	B.RoPE(dk, p.rope, p.pos, cfg.HeadDim, true)
	xn := ws.get("xn", T, cfg.Hidden)
	B.RMSNorm(xn, a.x, blk.AttnNorm, cfg.RMSNormEps)
	dxn := ws.get("dxn", T, cfg.Hidden)
	m.linearBackward(ws, dxn, false, dq, xn, l, hf.QProj, ad, a)
	m.linearBackward(ws, dxn, true, dk, xn, l, hf.KProj, ad, a)
	m.linearBackward(ws, dxn, true, dv, xn, l, hf.VProj, ad, a)
	dnorm := ws.get("dnorm", T, cfg.Hidden)
	B.RMSNormBackward(dnorm, dxn, a.x, blk.AttnNorm, cfg.RMSNormEps)
	B.Add(dres, dres, dnorm)
}

// mlpForward adds block l's MLP sublayer to the residual stream x in place.
func (m *Model) mlpForward(ws *workspace, l int, x *Tensor, ad *Adapter, acts *blockActs) {
	cfg, B, blk := m.Config, m.B, &m.Blocks[l]
	T := x.Rows
	name := func(s string) string { return s }
	if acts != nil {
		name = func(s string) string { return acts.prefix + s }
		acts.h = ws.get(name("h"), T, cfg.Hidden)
		B.Copy(acts.h, x)
	}
	xn := ws.get("xn", T, cfg.Hidden)
	B.RMSNorm(xn, x, blk.MLPNorm, cfg.RMSNormEps)
	gate := ws.get(name("gate"), T, cfg.Intermediate)
	up := ws.get(name("up"), T, cfg.Intermediate)
	m.linearForward(ws, gate, xn, l, hf.GateProj, ad, acts)
	m.linearForward(ws, up, xn, l, hf.UpProj, ad, acts)
	act := ws.get("act", T, cfg.Intermediate)
	B.SiLUMul(act, gate, up)
	o := ws.get("o", T, cfg.Hidden)
	m.linearForward(ws, o, act, l, hf.DownProj, ad, acts)
	B.Add(x, x, o)
	if acts != nil {
		acts.gate, acts.up = gate, up
	}
}

// mlpBackward turns dres, the gradient of the MLP sublayer's output, into
// the gradient of its input (in place).
func (m *Model) mlpBackward(ws *workspace, l int, dres *Tensor, ad *Adapter, a *blockActs) {
	cfg, B, blk := m.Config, m.B, &m.Blocks[l]
	T := dres.Rows
	xn := ws.get("xn", T, cfg.Hidden)
	B.RMSNorm(xn, a.h, blk.MLPNorm, cfg.RMSNormEps)
	act := ws.get("act", T, cfg.Intermediate)
	B.SiLUMul(act, a.gate, a.up)
	dact := ws.get("dact", T, cfg.Intermediate)
	m.linearBackward(ws, dact, false, dres, act, l, hf.DownProj, ad, a)
	dgate := ws.get("dgate", T, cfg.Intermediate)
	dup := ws.get("dup", T, cfg.Intermediate)
	B.SiLUMulBackward(dgate, dup, dact, a.gate, a.up)
	dxn := ws.get("dxn", T, cfg.Hidden)
	m.linearBackward(ws, dxn, false, dgate, xn, l, hf.GateProj, ad, a)
	m.linearBackward(ws, dxn, true, dup, xn, l, hf.UpProj, ad, a)
	dnorm := ws.get("dnorm", T, cfg.Hidden)
	B.RMSNormBackward(dnorm, dxn, a.h, blk.MLPNorm, cfg.RMSNormEps)
	B.Add(dres, dres, dnorm)
}

// blockForward runs transformer block l over x in place; acts, when not nil,
// receives what blockBackward needs.
func (m *Model) blockForward(ws *workspace, l int, x *Tensor, p *pass, ad *Adapter, acts *blockActs) {
	m.attentionForward(ws, l, x, p, ad, acts)
	m.mlpForward(ws, l, x, ad, acts)
}

// blockBackward turns dres, the gradient of block l's output, into the
// gradient of its input (in place), accumulating LoRA gradients on the way.
func (m *Model) blockBackward(ws *workspace, l int, dres *Tensor, p *pass, ad *Adapter, acts *blockActs) {
	m.mlpBackward(ws, l, dres, ad, acts)
	m.attentionBackward(ws, l, dres, p, ad, acts)
}
