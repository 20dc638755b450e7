package nn

import (
	"fmt"

	"github.com/goseal/ttt/hf"
)

// Batch is a set of token rows run through the model together: row r holds
// token IDs[r] at position Pos[r]; Segs group the rows into sequences for
// attention.
type Batch struct {
	IDs  []int32
	Pos  []int32
	Segs []Segment
}

// Validate checks the batch against the model before any op runs.
func (m *Model) validate(b *Batch, keyRows int) error {
	if len(b.IDs) != len(b.Pos) {
		return fmt.Errorf("batch has %d ids but %d positions", len(b.IDs), len(b.Pos))
	}
	for r, id := range b.IDs {
		if id < 0 || int(id) >= m.Config.VocabSize {
			return fmt.Errorf("token id %d at row %d is outside the vocabulary (%d)", id, r, m.Config.VocabSize)
		}
		if b.Pos[r] < 0 {
			return fmt.Errorf("negative position at row %d", r)
		}
	}
	for _, s := range b.Segs {
		if s.Q < 0 || s.N < 0 || s.Q+s.N > len(b.IDs) || s.KV < 0 || s.Past < 0 || s.KV+s.Past+s.N > keyRows {
			return fmt.Errorf("segment %+v does not fit %d rows and %d key rows", s, len(b.IDs), keyRows)
		}
	}
	return nil
}

// blockActs are the activations of one block that the backward pass needs;
// the normalised inputs and the MLP product are recomputed instead of kept.
type blockActs struct {
	x        *Tensor // block input (residual stream)
	q, k, v  *Tensor // after bias and rotation
	att, lse *Tensor // attention output (before o_proj) and its log-sum-exps
	h        *Tensor // residual stream after attention
	gate, up *Tensor // MLP pre-activations
	drop     [hf.NumModules]*Tensor
	dropSeed uint64
}

// KVCache holds keys and values for generation: per block, one row per
// cached token of every sequence (sequence s owns rows [s·Cap, (s+1)·Cap)).
type KVCache struct {
	K, V []*Tensor
	Cap  int
}

// NewKVCache makes a cache for seqs sequences of up to capacity tokens each.
func (m *Model) NewKVCache(seqs, capacity int) *KVCache {
	c := &KVCache{Cap: capacity}
	cols := m.Config.KVHeads * m.Config.HeadDim
	for range m.Blocks {
		c.K = append(c.K, m.B.NewTensor(seqs*capacity, cols))
		c.V = append(c.V, m.B.NewTensor(seqs*capacity, cols))
	}
	return c
}

// linear sets y = x·Wᵀ (+ bias) (+ the LoRA term) for module mod of block l.
// With acts set (training) a LoRA's dropout mask is drawn and kept there.
func (m *Model) linear(ws *workspace, y, x *Tensor, l int, mod hf.Module, ad *Adapter, acts *blockActs) {
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
		mask := ws.get(fmt.Sprintf("b%d.mask.%s", l, mod), x.Rows, x.Cols)
		xd = ws.get("lora.xd", x.Rows, x.Cols)
		m.B.Dropout(xd, mask, x, lo.Dropout, acts.dropSeed+uint64(mod))
		acts.drop[mod] = mask
	}
	t := ws.get("lora.t", x.Rows, lo.A.Rows)
	m.B.MatMul(t, xd, lo.A, false, true, 1, false)
	m.B.MatMul(y, t, lo.B, false, true, lo.Scale, true)
}

// block runs transformer block l over x in place. Keys and values of the
// batch's rows are written to kc/vc at rows kvRows (generation), or used
// directly when kc is nil (training, where segments index the batch's rows).
// acts, when not nil, receives what the backward pass needs.
func (m *Model) block(ws *workspace, l int, x *Tensor, b *Batch, kc, vc *Tensor, kvRows []int32, ad *Adapter, acts *blockActs) {
	cfg, B := m.Config, m.B
	blk := &m.Blocks[l]
	T := x.Rows
	qCols, kvCols := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	name := func(s string) string { return s }
	if acts != nil {
		name = func(s string) string { return fmt.Sprintf("b%d.%s", l, s) }
		acts.x = ws.get(name("x"), T, cfg.Hidden)
		copy(acts.x.Data, x.Data)
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

	// Attention: x += o_proj(attention(rope(q), rope(k), v)) of rmsnorm(x).
	B.RMSNorm(xn, x, blk.AttnNorm, cfg.RMSNormEps)
	m.linear(ws, q, xn, l, hf.QProj, ad, acts)
	m.linear(ws, k, xn, l, hf.KProj, ad, acts)
	m.linear(ws, v, xn, l, hf.VProj, ad, acts)
	rope := m.ropeTable(int(maxPos(b.Pos)) + 1)
	B.RoPE(q, rope, b.Pos, cfg.HeadDim, false)
	B.RoPE(k, rope, b.Pos, cfg.HeadDim, false)
	keys, values := k, v
	if kc != nil {
		B.SetRows(kc, k, kvRows)
		B.SetRows(vc, v, kvRows)
		keys, values = kc, vc
	}
	B.Attention(att, lse, q, keys, values, b.Segs, cfg.Heads, cfg.KVHeads)
	o := ws.get("o", T, cfg.Hidden)
	m.linear(ws, o, att, l, hf.OProj, ad, acts)
	B.Add(x, x, o)
	if acts != nil {
		acts.q, acts.k, acts.v, acts.att, acts.lse = q, k, v, att, lse
		acts.h = ws.get(name("h"), T, cfg.Hidden)
		copy(acts.h.Data, x.Data)
	}

	// MLP: x += down_proj(silu(gate_proj(x')) · up_proj(x')), x' = rmsnorm(x).
	B.RMSNorm(xn, x, blk.MLPNorm, cfg.RMSNormEps)
	gate := ws.get(name("gate"), T, cfg.Intermediate)
	up := ws.get(name("up"), T, cfg.Intermediate)
	m.linear(ws, gate, xn, l, hf.GateProj, ad, acts)
	m.linear(ws, up, xn, l, hf.UpProj, ad, acts)
	act := ws.get("act", T, cfg.Intermediate)
	B.SiLUMul(act, gate, up)
	m.linear(ws, o, act, l, hf.DownProj, ad, acts)
	B.Add(x, x, o)
	if acts != nil {
		acts.gate, acts.up = gate, up
	}
}

func maxPos(pos []int32) int32 {
	var m int32
	for _, p := range pos {
		m = max(m, p)
	}
	return m
}

// Logits runs the batch through the model (no cache, no adapter when ad is
// nil) and returns the logits of every row (rows × vocab). It is the plain
// full-sequence forward pass; generation uses a KV cache instead.
func (m *Model) Logits(b *Batch, ad *Adapter) (*Tensor, error) {
	if err := m.validate(b, len(b.IDs)); err != nil {
		return nil, err
	}
	ws := newWorkspace(m.B)
	x := m.B.NewTensor(len(b.IDs), m.Config.Hidden)
	m.B.Embed(x, m.Embed, b.IDs)
	for l := range m.Blocks {
		m.block(ws, l, x, b, nil, nil, nil, ad, nil)
	}
	m.B.RMSNorm(x, x, m.Norm, m.Config.RMSNormEps)
	logits := m.B.NewTensor(len(b.IDs), m.Config.VocabSize)
	m.B.MatMul(logits, x, m.LMHead, false, true, 1, false)
	return logits, m.B.Sync()
}
