package cpu

import (
	"math/rand/v2"
	"unsafe"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// Backend is the pure-Go backend: our SGEMM (gemm.go) for matrix products, the plain
// functions of cpu_ops.go for the rest, spread over all cores. hf.Weights are
// widened to float32 once, when loaded.
type Backend struct{}

// Name implements nn.Backend.
func (Backend) Name() string { return "cpu" }

// NewTensor implements nn.Backend.
func (Backend) NewTensor(rows, cols int) *nn.Tensor {
	return &nn.Tensor{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
}

// Weight implements nn.Backend. A float32 tensor is used in place, straight
// from the file's read-only memory map (never copied into the heap); bf16 and
// f16 tensors are widened to float32 once.
func (c Backend) Weight(t *hf.StoredTensor, rows, cols int) *nn.Tensor {
	if t.DType == hf.F32 && len(t.Data) > 0 && uintptr(unsafe.Pointer(&t.Data[0]))%4 == 0 {
		return &nn.Tensor{Rows: rows, Cols: cols, Data: unsafe.Slice((*float32)(unsafe.Pointer(&t.Data[0])), rows*cols)}
	}
	w := c.NewTensor(rows, cols)
	t.Floats(w.Data)
	return w
}

// Sync implements nn.Backend; CPU work is never queued.
func (Backend) Sync() error { return nil }

// MatMul implements nn.Backend.
func (Backend) MatMul(c, a, b *nn.Tensor, transA, transB bool, alpha float32, accumulate bool) {
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

// AddBias implements nn.Backend.
func (Backend) AddBias(x, bias *nn.Tensor) {
	for r := 0; r < x.Rows; r++ {
		row := x.Row(r)
		for i, b := range bias.Data {
			row[i] += b
		}
	}
}

// Add implements nn.Backend.
func (Backend) Add(out, a, b *nn.Tensor) {
	for i := range out.Data {
		out.Data[i] = a.Data[i] + b.Data[i]
	}
}

// Mul implements nn.Backend.
func (Backend) Mul(out, a, b *nn.Tensor) {
	for i := range out.Data {
		out.Data[i] = a.Data[i] * b.Data[i]
	}
}

// Scale implements nn.Backend.
func (Backend) Scale(x *nn.Tensor, s float32) {
	for i := range x.Data {
		x.Data[i] *= s
	}
}

// SumSquares implements nn.Backend.
func (Backend) SumSquares(x *nn.Tensor) float64 {
	var s float64
	for _, v := range x.Data {
		s += float64(v) * float64(v)
	}
	return s
}

// Embed implements nn.Backend.
func (Backend) Embed(out, table *nn.Tensor, ids []int32) {
	Embed(out.Data, table.Data, ids, table.Cols)
}

// SetRows implements nn.Backend.
func (Backend) SetRows(dst, src *nn.Tensor, rows []int32) {
	for r, d := range rows {
		copy(dst.Row(int(d)), src.Row(r))
	}
}

// RMSNorm implements nn.Backend.
func (Backend) RMSNorm(out, x, w *nn.Tensor, eps float32) {
	RMSNorm(out.Data, x.Data, w.Data, x.Rows, x.Cols, eps)
}

// RMSNormBackward implements nn.Backend.
func (Backend) RMSNormBackward(dx, dy, x, w *nn.Tensor, eps float32) {
	RMSNormBackward(dx.Data, dy.Data, x.Data, w.Data, x.Rows, x.Cols, eps)
}

// RoPE implements nn.Backend.
func (Backend) RoPE(x, table *nn.Tensor, pos []int32, headDim int, inverse bool) {
	RoPE(x.Data, table.Data, pos, x.Rows, x.Cols, headDim, inverse)
}

// Attention implements nn.Backend.
func (Backend) Attention(out, lse, q, k, v *nn.Tensor, segs []nn.Segment, heads, kvHeads int) {
	var l []float32
	if lse != nil {
		l = lse.Data
	}
	Attention(out.Data, l, q.Data, k.Data, v.Data, segs, AttnShape{heads, kvHeads, q.Cols / heads})
}

// AttentionBackward implements nn.Backend.
func (Backend) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *nn.Tensor, segs []nn.Segment, heads, kvHeads int) {
	AttentionBackward(dq.Data, dk.Data, dv.Data, dout.Data, out.Data, lse.Data, q.Data, k.Data, v.Data, segs, AttnShape{heads, kvHeads, q.Cols / heads})
}

// SiLUMul implements nn.Backend.
func (Backend) SiLUMul(out, gate, up *nn.Tensor) { SiLUMul(out.Data, gate.Data, up.Data) }

// SiLUMulBackward implements nn.Backend.
func (Backend) SiLUMulBackward(dgate, dup, dout, gate, up *nn.Tensor) {
	SiLUMulBackward(dgate.Data, dup.Data, dout.Data, gate.Data, up.Data)
}

// CrossEntropy implements nn.Backend.
func (Backend) CrossEntropy(dlogits, logits *nn.Tensor, labels []int32, scale float32) float64 {
	losses := make([]float32, logits.Rows)
	CrossEntropy(dlogits.Data, losses, logits.Data, labels, logits.Cols, scale)
	var total float64
	for _, l := range losses {
		total += float64(l)
	}
	return total
}

// Dropout implements nn.Backend.
func (Backend) Dropout(out, mask, x *nn.Tensor, p float32, seed uint64) {
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

// AdamW implements nn.Backend.
func (Backend) AdamW(param, grad, m, v *nn.Tensor, h nn.AdamWParams) {
	AdamW(param.Data, grad.Data, m.Data, v.Data, h, 1)
}
