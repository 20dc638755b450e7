package nn

import (
	"math/rand/v2"
	"unsafe"
)

// CPU is the pure-Go backend: our SGEMM (gemm.go) for matrix products, the plain
// functions of cpu_ops.go for the rest, spread over all cores. Weights are
// widened to float32 once, when loaded.
type CPU struct{}

// Name implements Backend.
func (CPU) Name() string { return "cpu" }

// NewTensor implements Backend.
func (CPU) NewTensor(rows, cols int) *Tensor {
	return &Tensor{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
}

// Weight implements Backend. A float32 tensor is used in place, straight
// from the file's read-only memory map (never copied into the heap); bf16 and
// f16 tensors are widened to float32 once.
func (c CPU) Weight(t *StoredTensor, rows, cols int) *Tensor {
	if t.DType == F32 && len(t.Data) > 0 && uintptr(unsafe.Pointer(&t.Data[0]))%4 == 0 {
		return &Tensor{Rows: rows, Cols: cols, Data: unsafe.Slice((*float32)(unsafe.Pointer(&t.Data[0])), rows*cols)}
	}
	w := c.NewTensor(rows, cols)
	t.Floats(w.Data)
	return w
}

// Sync implements Backend; CPU work is never queued.
func (CPU) Sync() error { return nil }

// MatMul implements Backend.
func (CPU) MatMul(c, a, b *Tensor, transA, transB bool, alpha float32, accumulate bool) {
	m, k := a.Rows, a.Cols
	if transA {
		m, k = k, m
	}
	n := b.Cols
	if transB {
		n = b.Rows
	}
	if c.Rows != m || c.Cols != n || (transB && b.Cols != k) || (!transB && b.Rows != k) {
		panic("nn: MatMul shape mismatch")
	}
	MatMulScaled(c.Data, a.Data, b.Data, m, n, k, transA, transB, alpha, accumulate)
}

// AddBias implements Backend.
func (CPU) AddBias(x, bias *Tensor) {
	for r := 0; r < x.Rows; r++ {
		row := x.Row(r)
		for i, b := range bias.Data {
			row[i] += b
		}
	}
}

// Add implements Backend.
func (CPU) Add(out, a, b *Tensor) {
	for i := range out.Data {
		out.Data[i] = a.Data[i] + b.Data[i]
	}
}

// Mul implements Backend.
func (CPU) Mul(out, a, b *Tensor) {
	for i := range out.Data {
		out.Data[i] = a.Data[i] * b.Data[i]
	}
}

// Scale implements Backend.
func (CPU) Scale(x *Tensor, s float32) {
	for i := range x.Data {
		x.Data[i] *= s
	}
}

// SumSquares implements Backend.
func (CPU) SumSquares(x *Tensor) float64 {
	var s float64
	for _, v := range x.Data {
		s += float64(v) * float64(v)
	}
	return s
}

// Embed implements Backend.
func (CPU) Embed(out, table *Tensor, ids []int32) { Embed(out.Data, table.Data, ids, table.Cols) }

// SetRows implements Backend.
func (CPU) SetRows(dst, src *Tensor, rows []int32) {
	for r, d := range rows {
		copy(dst.Row(int(d)), src.Row(r))
	}
}

// RMSNorm implements Backend.
func (CPU) RMSNorm(out, x, w *Tensor, eps float32) {
	RMSNorm(out.Data, x.Data, w.Data, x.Rows, x.Cols, eps)
}

// RMSNormBackward implements Backend.
func (CPU) RMSNormBackward(dx, dy, x, w *Tensor, eps float32) {
	RMSNormBackward(dx.Data, dy.Data, x.Data, w.Data, x.Rows, x.Cols, eps)
}

// RoPE implements Backend.
func (CPU) RoPE(x, table *Tensor, pos []int32, headDim int, inverse bool) {
	RoPE(x.Data, table.Data, pos, x.Rows, x.Cols, headDim, inverse)
}

// Attention implements Backend.
func (CPU) Attention(out, lse, q, k, v *Tensor, segs []Segment, heads, kvHeads int) {
	var l []float32
	if lse != nil {
		l = lse.Data
	}
	Attention(out.Data, l, q.Data, k.Data, v.Data, segs, AttnShape{heads, kvHeads, q.Cols / heads})
}

// AttentionBackward implements Backend.
func (CPU) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *Tensor, segs []Segment, heads, kvHeads int) {
	AttentionBackward(dq.Data, dk.Data, dv.Data, dout.Data, out.Data, lse.Data, q.Data, k.Data, v.Data, segs, AttnShape{heads, kvHeads, q.Cols / heads})
}

// SiLUMul implements Backend.
func (CPU) SiLUMul(out, gate, up *Tensor) { SiLUMul(out.Data, gate.Data, up.Data) }

// SiLUMulBackward implements Backend.
func (CPU) SiLUMulBackward(dgate, dup, dout, gate, up *Tensor) {
	SiLUMulBackward(dgate.Data, dup.Data, dout.Data, gate.Data, up.Data)
}

// CrossEntropy implements Backend.
func (CPU) CrossEntropy(dlogits, logits *Tensor, labels []int32, scale float32) float64 {
	return CrossEntropy(dlogits.Data, logits.Data, labels, logits.Cols, scale)
}

// Dropout implements Backend.
func (CPU) Dropout(out, mask, x *Tensor, p float32, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5ea1))
	keep := 1 / (1 - p)
	for i, v := range x.Data {
		if rng.Float32() < p {
			mask.Data[i], out.Data[i] = 0, 0
		} else {
			mask.Data[i], out.Data[i] = keep, v*keep
		}
	}
}

// AdamW implements Backend.
func (CPU) AdamW(param, grad, m, v *Tensor, h AdamWParams) {
	AdamW(param.Data, grad.Data, m.Data, v.Data, h)
}
