package gpu

import (
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/nn"
)

// Each op encodes its kernel (package kernels, named alike) with the
// meaning of the CPU backend's op of the same name (package cpu), which is
// that kernel's reference.

// MatMul implements nn.Backend (kernels.MatMul).
func (b *Backend) MatMul(c, a, w *nn.Tensor, transA, transB bool, alpha float32, accumulate bool) {
	m, n, k := nn.MatMulDims(c, a, w, transA, transB)
	scratch := b.scratchBuf(kernels.MatMulScratch(m, n, k))
	b.launch(b.lib.MatMul(b.encoder(), arg(c), arg(a), arg(w), w.DType, m, n, k, transA, transB, alpha, accumulate, scratch))
}

// AddBias implements nn.Backend (kernels.AddBias).
func (b *Backend) AddBias(x, bias *nn.Tensor) {
	b.launch(b.lib.AddBias(b.encoder(), arg(x), arg(bias), bias.DType, x.Rows, x.Cols))
}

// Add implements nn.Backend (kernels.Add).
func (b *Backend) Add(out, x, y *nn.Tensor) {
	b.launch(b.lib.Add(b.encoder(), arg(out), arg(x), arg(y), out.Len()))
}

// Copy implements nn.Backend (kernels.Copy).
func (b *Backend) Copy(dst, src *nn.Tensor) {
	b.launch(b.lib.Copy(b.encoder(), arg(dst), arg(src), dst.Len()))
}

// Fill implements nn.Backend (kernels.Fill).
func (b *Backend) Fill(x *nn.Tensor, v float32) {
	b.launch(b.lib.Fill(b.encoder(), arg(x), x.Len(), v))
}

// Embed implements nn.Backend (kernels.Embed).
func (b *Backend) Embed(out, table, ids *nn.Tensor) {
	b.launch(b.lib.Embed(b.encoder(), arg(out), arg(table), table.DType, arg(ids), out.Rows, out.Cols, table.Rows))
}

// SetRows implements nn.Backend (kernels.SetRows).
func (b *Backend) SetRows(dst, src, rows *nn.Tensor) {
	b.launch(b.lib.SetRows(b.encoder(), arg(dst), arg(src), arg(rows), src.Rows, src.Cols, dst.Rows))
}

// RMSNorm implements nn.Backend (kernels.RMSNorm).
func (b *Backend) RMSNorm(out, x, w *nn.Tensor, eps float32) {
	b.launch(b.lib.RMSNorm(b.encoder(), arg(out), arg(x), arg(w), w.DType, x.Rows, x.Cols, eps))
}

// RMSNormBackward implements nn.Backend (kernels.RMSNormBackward).
func (b *Backend) RMSNormBackward(dx, dy, x, w *nn.Tensor, eps float32) {
	b.launch(b.lib.RMSNormBackward(b.encoder(), arg(dx), arg(dy), arg(x), arg(w), w.DType, x.Rows, x.Cols, eps))
}

// RoPE implements nn.Backend (kernels.RoPE).
func (b *Backend) RoPE(x, table, pos *nn.Tensor, headDim int, inverse bool) {
	b.launch(b.lib.RoPE(b.encoder(), arg(x), arg(table), arg(pos), x.Rows, x.Cols, headDim, table.Rows, inverse))
}

// decodeMax is the most queries a segment may have for attention to run
// as the decode kernel (split over keys) rather than the query-block one.
const decodeMax = 1

// Attention implements nn.Backend: kernels.AttentionDecode when every
// segment is one query (a decode step), kernels.Attention otherwise.
func (b *Backend) Attention(out, lse, q, k, v *nn.Tensor, segs []nn.Segment, heads, kvHeads int) {
	s := nn.AttnShape{Heads: heads, KVHeads: kvHeads, HeadDim: q.Cols / heads}
	decode := true
	for _, seg := range segs {
		decode = decode && seg.N <= decodeMax
	}
	if decode {
		blocks := b.stageTable(kernels.AttentionDecodeBlocks(segs))
		scratch := b.scratchBuf(kernels.AttentionDecodeScratch(segs, s))
		b.launch(b.lib.AttentionDecode(b.encoder(), arg(out), arg(lse), arg(q), arg(k), arg(v), blocks, scratch, segs, s))
		return
	}
	blocks := b.stageTable(kernels.AttentionBlocks(segs))
	b.launch(b.lib.Attention(b.encoder(), arg(out), arg(lse), arg(q), arg(k), arg(v), blocks, segs, s))
}

// AttentionBackward implements nn.Backend (kernels.AttentionBackward).
func (b *Backend) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *nn.Tensor, segs []nn.Segment, heads, kvHeads int) {
	s := nn.AttnShape{Heads: heads, KVHeads: kvHeads, HeadDim: q.Cols / heads}
	blocks := b.stageTable(kernels.AttentionBackwardBlocks(segs, s))
	b.launch(b.lib.AttentionBackward(b.encoder(), arg(dq), arg(dk), arg(dv), arg(dout), arg(out), arg(lse), arg(q), arg(k), arg(v), blocks, segs, s))
}

// SiLUMul implements nn.Backend (kernels.SiLUMul).
func (b *Backend) SiLUMul(out, gate, up *nn.Tensor) {
	b.launch(b.lib.SiLUMul(b.encoder(), arg(out), arg(gate), arg(up), out.Len()))
}

// SiLUMulBackward implements nn.Backend (kernels.SiLUMulBackward).
func (b *Backend) SiLUMulBackward(dgate, dup, dout, gate, up *nn.Tensor) {
	b.launch(b.lib.SiLUMulBackward(b.encoder(), arg(dgate), arg(dup), arg(dout), arg(gate), arg(up), dout.Len()))
}

// Dropout implements nn.Backend (kernels.Dropout).
func (b *Backend) Dropout(out, x *nn.Tensor, p float32, seed uint64) {
	b.launch(b.lib.Dropout(b.encoder(), arg(out), arg(x), x.Len(), p, seed))
}

// CrossEntropy implements nn.Backend (kernels.CrossEntropy).
func (b *Backend) CrossEntropy(dlogits, losses, logits, labels *nn.Tensor, scale float32) {
	b.launch(b.lib.CrossEntropy(b.encoder(), arg(dlogits), arg(losses), arg(logits), arg(labels), logits.Rows, logits.Cols, scale))
}

// Sum implements nn.Backend (kernels.Sum).
func (b *Backend) Sum(dst, x *nn.Tensor, accumulate bool) {
	scratch := b.scratchBuf(kernels.ReduceScratchSize(x.Len()))
	b.launch(b.lib.Sum(b.encoder(), arg(dst), arg(x), scratch, x.Len(), accumulate))
}

// SumSquares implements nn.Backend (kernels.SumSquares).
func (b *Backend) SumSquares(dst, x *nn.Tensor) {
	scratch := b.scratchBuf(kernels.ReduceScratchSize(x.Len()))
	b.launch(b.lib.SumSquares(b.encoder(), arg(dst), arg(x), scratch, x.Len()))
}

// AdamW implements nn.Backend (kernels.AdamW).
func (b *Backend) AdamW(param, grad, m, v *nn.Tensor, h nn.AdamWParams, gradSumSquares *nn.Tensor) {
	b.launch(b.lib.AdamW(b.encoder(), arg(param), arg(grad), arg(m), arg(v), arg(gradSumSquares), param.Len(), h))
}

// Sample implements nn.Backend (kernels.Sample).
func (b *Backend) Sample(ids, logits, u *nn.Tensor, temperature, topP float32) {
	b.launch(b.lib.Sample(b.encoder(), arg(ids), arg(logits), arg(u), logits.Rows, logits.Cols, temperature, topP))
}
