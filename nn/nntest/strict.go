// Package nntest provides a checking backend for tests of code written
// against nn.Backend.
package nntest

import (
	"fmt"
	"slices"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// Strict wraps a backend the way a GPU behaves: its tensors have no host
// view (their storage is an opaque handle that the inner backend's own
// accessors refuse), every op is queued and runs only when the host waits
// (Download or Sync), and Upload copies its data at the call and takes
// effect in queue order. It counts the transfers and waits, so tests can
// assert how often the code above the seam reads back. Not safe for
// concurrent use.
type Strict struct {
	Inner nn.Backend
	// Uploads, Downloads and Syncs count calls; every Download and Sync is
	// a host wait.
	Uploads, Downloads, Syncs int
	// Allocated counts the bytes of every tensor NewTensor has made.
	Allocated int64
	queue     []func()
}

// handle is a strict tensor's storage: the inner backend's, hidden.
type handle struct{ inner any }

// NewStrict wraps inner.
func NewStrict(inner nn.Backend) *Strict { return &Strict{Inner: inner} }

// Waits is the number of host waits so far.
func (s *Strict) Waits() int { return s.Downloads + s.Syncs }

// Reset zeroes the counts.
func (s *Strict) Reset() { s.Uploads, s.Downloads, s.Syncs = 0, 0, 0 }

func wrap(t *nn.Tensor) *nn.Tensor {
	return &nn.Tensor{Rows: t.Rows, Cols: t.Cols, DType: t.DType, Storage: &handle{t.Storage}, Off: t.Off}
}

// in returns the inner backend's view of a strict tensor (nil for nil).
func in(t *nn.Tensor) *nn.Tensor {
	if t == nil {
		return nil
	}
	h, ok := t.Storage.(*handle)
	if !ok {
		panic(fmt.Sprintf("nntest: a tensor with storage %T was not made by the strict backend", t.Storage))
	}
	if h.inner == nil {
		panic("nntest: a tensor used after Free")
	}
	return &nn.Tensor{Rows: t.Rows, Cols: t.Cols, DType: t.DType, Storage: h.inner, Off: t.Off}
}

func (s *Strict) enqueue(f func()) { s.queue = append(s.queue, f) }

func (s *Strict) flush() {
	for _, f := range s.queue {
		f()
	}
	s.queue = s.queue[:0]
}

// Name implements nn.Backend.
func (s *Strict) Name() string { return "strict " + s.Inner.Name() }

// NewTensor implements nn.Backend.
func (s *Strict) NewTensor(dt hf.DType, rows, cols int) *nn.Tensor {
	s.Allocated += int64(rows * cols * dt.Size())
	return wrap(s.Inner.NewTensor(dt, rows, cols))
}

// Weight implements nn.Backend.
func (s *Strict) Weight(t *hf.StoredTensor, rows, cols int) *nn.Tensor {
	return wrap(s.Inner.Weight(t, rows, cols))
}

// Upload implements nn.Backend: src is copied now, written in queue order.
func (s *Strict) Upload(dst *nn.Tensor, src []float32) {
	s.Uploads++
	d, c := in(dst), slices.Clone(src[:dst.Len()])
	s.enqueue(func() { s.Inner.Upload(d, c) })
}

// UploadInts implements nn.Backend like Upload.
func (s *Strict) UploadInts(dst *nn.Tensor, src []int32) {
	s.Uploads++
	d, c := in(dst), slices.Clone(src[:dst.Len()])
	s.enqueue(func() { s.Inner.UploadInts(d, c) })
}

// Download implements nn.Backend.
func (s *Strict) Download(dst []float32, src *nn.Tensor) error {
	s.Downloads++
	s.flush()
	return s.Inner.Download(dst, in(src))
}

// DownloadInts implements nn.Backend.
func (s *Strict) DownloadInts(dst []int32, src *nn.Tensor) error {
	s.Downloads++
	s.flush()
	return s.Inner.DownloadInts(dst, in(src))
}

// Sync implements nn.Backend.
func (s *Strict) Sync() error {
	s.Syncs++
	s.flush()
	return s.Inner.Sync()
}

// Free implements nn.Backend: the tensor's handle is emptied at once, so
// any later use of it or of its views panics.
func (s *Strict) Free(t *nn.Tensor) {
	h, ok := t.Storage.(*handle)
	if !ok || h.inner == nil {
		panic("nntest: Free of a tensor that is not a live strict tensor")
	}
	inner := in(t)
	h.inner = nil
	s.enqueue(func() { s.Inner.Free(inner) })
}

// MatMul implements nn.Backend.
func (s *Strict) MatMul(c, a, b *nn.Tensor, transA, transB bool, alpha float32, accumulate bool) {
	c, a, b = in(c), in(a), in(b)
	s.enqueue(func() { s.Inner.MatMul(c, a, b, transA, transB, alpha, accumulate) })
}

// AddBias implements nn.Backend.
func (s *Strict) AddBias(x, bias *nn.Tensor) {
	x, bias = in(x), in(bias)
	s.enqueue(func() { s.Inner.AddBias(x, bias) })
}

// Add implements nn.Backend.
func (s *Strict) Add(out, a, b *nn.Tensor) {
	out, a, b = in(out), in(a), in(b)
	s.enqueue(func() { s.Inner.Add(out, a, b) })
}

// Copy implements nn.Backend.
func (s *Strict) Copy(dst, src *nn.Tensor) {
	dst, src = in(dst), in(src)
	s.enqueue(func() { s.Inner.Copy(dst, src) })
}

// Fill implements nn.Backend.
func (s *Strict) Fill(x *nn.Tensor, v float32) {
	x = in(x)
	s.enqueue(func() { s.Inner.Fill(x, v) })
}

// Embed implements nn.Backend.
func (s *Strict) Embed(out, table, ids *nn.Tensor) {
	out, table, ids = in(out), in(table), in(ids)
	s.enqueue(func() { s.Inner.Embed(out, table, ids) })
}

// SetRows implements nn.Backend.
func (s *Strict) SetRows(dst, src, rows *nn.Tensor) {
	dst, src, rows = in(dst), in(src), in(rows)
	s.enqueue(func() { s.Inner.SetRows(dst, src, rows) })
}

// RMSNorm implements nn.Backend.
func (s *Strict) RMSNorm(out, x, w *nn.Tensor, eps float32) {
	out, x, w = in(out), in(x), in(w)
	s.enqueue(func() { s.Inner.RMSNorm(out, x, w, eps) })
}

// RMSNormBackward implements nn.Backend.
func (s *Strict) RMSNormBackward(dx, dy, x, w *nn.Tensor, eps float32) {
	dx, dy, x, w = in(dx), in(dy), in(x), in(w)
	s.enqueue(func() { s.Inner.RMSNormBackward(dx, dy, x, w, eps) })
}

// RoPE implements nn.Backend.
func (s *Strict) RoPE(x, table, pos *nn.Tensor, headDim int, inverse bool) {
	x, table, pos = in(x), in(table), in(pos)
	s.enqueue(func() { s.Inner.RoPE(x, table, pos, headDim, inverse) })
}

// Attention implements nn.Backend.
func (s *Strict) Attention(out, lse, q, k, v *nn.Tensor, segs []nn.Segment, heads, kvHeads int) {
	out, lse, q, k, v = in(out), in(lse), in(q), in(k), in(v)
	segs = slices.Clone(segs)
	s.enqueue(func() { s.Inner.Attention(out, lse, q, k, v, segs, heads, kvHeads) })
}

// AttentionBackward implements nn.Backend.
func (s *Strict) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *nn.Tensor, segs []nn.Segment, heads, kvHeads int) {
	dq, dk, dv, dout, out, lse, q, k, v = in(dq), in(dk), in(dv), in(dout), in(out), in(lse), in(q), in(k), in(v)
	segs = slices.Clone(segs)
	s.enqueue(func() { s.Inner.AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, segs, heads, kvHeads) })
}

// SiLUMul implements nn.Backend.
func (s *Strict) SiLUMul(out, gate, up *nn.Tensor) {
	out, gate, up = in(out), in(gate), in(up)
	s.enqueue(func() { s.Inner.SiLUMul(out, gate, up) })
}

// SiLUMulBackward implements nn.Backend.
func (s *Strict) SiLUMulBackward(dgate, dup, dout, gate, up *nn.Tensor) {
	dgate, dup, dout, gate, up = in(dgate), in(dup), in(dout), in(gate), in(up)
	s.enqueue(func() { s.Inner.SiLUMulBackward(dgate, dup, dout, gate, up) })
}

// Dropout implements nn.Backend.
func (s *Strict) Dropout(out, x *nn.Tensor, p float32, seed uint64) {
	out, x = in(out), in(x)
	s.enqueue(func() { s.Inner.Dropout(out, x, p, seed) })
}

// CrossEntropy implements nn.Backend.
func (s *Strict) CrossEntropy(dlogits, losses, logits, labels *nn.Tensor, scale float32) {
	dlogits, losses, logits, labels = in(dlogits), in(losses), in(logits), in(labels)
	s.enqueue(func() { s.Inner.CrossEntropy(dlogits, losses, logits, labels, scale) })
}

// Sum implements nn.Backend.
func (s *Strict) Sum(dst, x *nn.Tensor, accumulate bool) {
	dst, x = in(dst), in(x)
	s.enqueue(func() { s.Inner.Sum(dst, x, accumulate) })
}

// SumSquares implements nn.Backend.
func (s *Strict) SumSquares(dst, x *nn.Tensor) {
	dst, x = in(dst), in(x)
	s.enqueue(func() { s.Inner.SumSquares(dst, x) })
}

// AdamW implements nn.Backend.
func (s *Strict) AdamW(param, grad, m, v *nn.Tensor, h nn.AdamWParams, gradSumSquares *nn.Tensor) {
	param, grad, m, v, gradSumSquares = in(param), in(grad), in(m), in(v), in(gradSumSquares)
	s.enqueue(func() { s.Inner.AdamW(param, grad, m, v, h, gradSumSquares) })
}

// Sample implements nn.Backend.
func (s *Strict) Sample(ids, logits, u *nn.Tensor, temperature, topP float32) {
	ids, logits, u = in(ids), in(logits), in(u)
	s.enqueue(func() { s.Inner.Sample(ids, logits, u, temperature, topP) })
}
