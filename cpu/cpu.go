package cpu

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// Backend is the pure-Go backend: our SGEMM (gemm.go) for matrix products,
// the plain functions of cpu_ops.go, attention.go and sample.go for the rest,
// spread over all cores. A tensor's storage is a []float32 (F32) or []int32
// (I32); weights are widened to float32 once, when loaded. Ops run when
// called: nothing is ever queued.
type Backend struct{}

// f32 returns t's elements; t must be an F32 tensor of this backend.
func f32(t *nn.Tensor) []float32 {
	s, ok := t.Storage.([]float32)
	if !ok || t.DType != hf.F32 {
		panic(fmt.Sprintf("cpu: tensor of type %v with storage %T is not a float32 tensor of the CPU backend", t.DType, t.Storage))
	}
	return s[t.Off : t.Off+t.Len()]
}

// i32 returns t's elements; t must be an I32 tensor of this backend.
func i32(t *nn.Tensor) []int32 {
	s, ok := t.Storage.([]int32)
	if !ok || t.DType != hf.I32 {
		panic(fmt.Sprintf("cpu: tensor of type %v with storage %T is not an int32 tensor of the CPU backend", t.DType, t.Storage))
	}
	return s[t.Off : t.Off+t.Len()]
}

// Name implements nn.Backend.
func (Backend) Name() string { return "cpu" }

// NewTensor implements nn.Backend.
func (Backend) NewTensor(dt hf.DType, rows, cols int) *nn.Tensor {
	t := &nn.Tensor{Rows: rows, Cols: cols, DType: dt}
	switch dt {
	case hf.F32:
		t.Storage = make([]float32, rows*cols)
	case hf.I32:
		t.Storage = make([]int32, rows*cols)
	default:
		panic(fmt.Sprintf("cpu: NewTensor of type %v (only F32 and I32 are made)", dt))
	}
	return t
}

// Weight implements nn.Backend. A float32 tensor is used in place, straight
// from the file's read-only memory map (never copied into the heap); bf16 and
// f16 tensors are widened to float32 once.
func (c Backend) Weight(t *hf.StoredTensor, rows, cols int) *nn.Tensor {
	if t.DType == hf.F32 && len(t.Data) > 0 && uintptr(unsafe.Pointer(&t.Data[0]))%4 == 0 {
		return &nn.Tensor{Rows: rows, Cols: cols, DType: hf.F32, Storage: unsafe.Slice((*float32)(unsafe.Pointer(&t.Data[0])), rows*cols)}
	}
	w := c.NewTensor(hf.F32, rows, cols)
	t.Floats(f32(w))
	return w
}

// Upload implements nn.Backend.
func (Backend) Upload(dst *nn.Tensor, src []float32) { copy(f32(dst), src[:dst.Len()]) }

// UploadInts implements nn.Backend.
func (Backend) UploadInts(dst *nn.Tensor, src []int32) { copy(i32(dst), src[:dst.Len()]) }

// Download implements nn.Backend.
func (Backend) Download(dst []float32, src *nn.Tensor) error {
	copy(dst[:src.Len()], f32(src))
	return nil
}

// DownloadInts implements nn.Backend.
func (Backend) DownloadInts(dst []int32, src *nn.Tensor) error {
	copy(dst[:src.Len()], i32(src))
	return nil
}

// Free implements nn.Backend: the garbage collector frees CPU tensors.
func (Backend) Free(*nn.Tensor) {}

// Sync implements nn.Backend; CPU work is never queued.
func (Backend) Sync() error { return nil }

// MatMul implements nn.Backend.
func (Backend) MatMul(c, a, b *nn.Tensor, transA, transB bool, alpha float32, accumulate bool) {
	m, n, k := nn.MatMulDims(c, a, b, transA, transB)
	MatMulScaled(f32(c), f32(a), f32(b), m, n, k, transA, transB, alpha, accumulate)
}

// AddBias implements nn.Backend.
func (Backend) AddBias(x, bias *nn.Tensor) {
	xs, bs := f32(x), f32(bias)
	for r := 0; r < x.Rows; r++ {
		row := xs[r*x.Cols : (r+1)*x.Cols]
		for i, b := range bs {
			row[i] += b
		}
	}
}

// Add implements nn.Backend.
func (Backend) Add(out, a, b *nn.Tensor) {
	o, as, bs := f32(out), f32(a), f32(b)
	for i := range o {
		o[i] = as[i] + bs[i]
	}
}

// Copy implements nn.Backend.
func (Backend) Copy(dst, src *nn.Tensor) { copy(f32(dst), f32(src)) }

// Fill implements nn.Backend.
func (Backend) Fill(x *nn.Tensor, v float32) {
	xs := f32(x)
	for i := range xs {
		xs[i] = v
	}
}

// Embed implements nn.Backend.
func (Backend) Embed(out, table, ids *nn.Tensor) { Embed(f32(out), f32(table), i32(ids), table.Cols) }

// SetRows implements nn.Backend.
func (Backend) SetRows(dst, src, rows *nn.Tensor) {
	d, s := f32(dst), f32(src)
	for r, row := range i32(rows) {
		copy(d[int(row)*dst.Cols:(int(row)+1)*dst.Cols], s[r*src.Cols:(r+1)*src.Cols])
	}
}

// RMSNorm implements nn.Backend.
func (Backend) RMSNorm(out, x, w *nn.Tensor, eps float32) {
	RMSNorm(f32(out), f32(x), f32(w), x.Rows, x.Cols, eps)
}

// RMSNormBackward implements nn.Backend.
func (Backend) RMSNormBackward(dx, dy, x, w *nn.Tensor, eps float32) {
	RMSNormBackward(f32(dx), f32(dy), f32(x), f32(w), x.Rows, x.Cols, eps)
}

// RoPE implements nn.Backend.
func (Backend) RoPE(x, table, pos *nn.Tensor, headDim int, inverse bool) {
	RoPE(f32(x), f32(table), i32(pos), x.Rows, x.Cols, headDim, inverse)
}

// Attention implements nn.Backend.
func (Backend) Attention(out, lse, q, k, v *nn.Tensor, segs []nn.Segment, heads, kvHeads int) {
	var l []float32
	if lse != nil {
		l = f32(lse)
	}
	Attention(f32(out), l, f32(q), f32(k), f32(v), segs, nn.AttnShape{Heads: heads, KVHeads: kvHeads, HeadDim: q.Cols / heads})
}

// AttentionBackward implements nn.Backend.
func (Backend) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *nn.Tensor, segs []nn.Segment, heads, kvHeads int) {
	AttentionBackward(f32(dq), f32(dk), f32(dv), f32(dout), f32(out), f32(lse), f32(q), f32(k), f32(v), segs, nn.AttnShape{Heads: heads, KVHeads: kvHeads, HeadDim: q.Cols / heads})
}

// SiLUMul implements nn.Backend.
func (Backend) SiLUMul(out, gate, up *nn.Tensor) { SiLUMul(f32(out), f32(gate), f32(up)) }

// SiLUMulBackward implements nn.Backend.
func (Backend) SiLUMulBackward(dgate, dup, dout, gate, up *nn.Tensor) {
	SiLUMulBackward(f32(dgate), f32(dup), f32(dout), f32(gate), f32(up))
}

// Dropout implements nn.Backend.
func (Backend) Dropout(out, x *nn.Tensor, p float32, seed uint64) {
	Dropout(f32(out), f32(x), p, nn.DropoutKey(seed))
}

// CrossEntropy implements nn.Backend.
func (Backend) CrossEntropy(dlogits, losses, logits, labels *nn.Tensor, scale float32) {
	CrossEntropy(f32(dlogits), f32(losses), f32(logits), i32(labels), logits.Cols, scale)
}

// Sum implements nn.Backend.
func (Backend) Sum(dst, x *nn.Tensor, accumulate bool) {
	d := f32(dst)
	if accumulate {
		d[0] += Sum(f32(x))
	} else {
		d[0] = Sum(f32(x))
	}
}

// SumSquares implements nn.Backend.
func (Backend) SumSquares(dst, x *nn.Tensor) { f32(dst)[0] = SumSquares(f32(x)) }

// AdamW implements nn.Backend.
func (Backend) AdamW(param, grad, m, v *nn.Tensor, h nn.AdamWParams, gradSumSquares *nn.Tensor) {
	clip := nn.ClipFactor(f32(gradSumSquares)[0], float32(h.MaxGradNorm))
	AdamW(f32(param), f32(grad), f32(m), f32(v), h, clip)
}

// sampleScratch holds Sample's scratch between calls, so sampling a token
// allocates nothing once a vocabulary's worth is there.
var sampleScratch = sync.Pool{New: func() any { return new([]float32) }}

// Sample implements nn.Backend.
func (Backend) Sample(ids, logits, u *nn.Tensor, temperature, topP float32) {
	out, l := i32(ids), f32(logits)
	var us []float32
	if temperature > 0 {
		us = f32(u)
	}
	var scratch []float32
	if temperature > 0 {
		p := sampleScratch.Get().(*[]float32)
		defer sampleScratch.Put(p)
		if cap(*p) < 2*logits.Cols {
			*p = make([]float32, 2*logits.Cols)
		}
		scratch = (*p)[:2*logits.Cols]
	}
	for r := range out {
		var ur float32
		if us != nil {
			ur = us[r]
		}
		out[r] = Sample(l[r*logits.Cols:(r+1)*logits.Cols], ur, temperature, topP, scratch)
	}
}
