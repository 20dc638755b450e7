package nn

import (
	"math"

	"github.com/goseal/ttt/hf"
)

// Tensor is a dense, row-major rows×cols array of float32 owned by a backend.
// Data is its host view: on the CPU backend the storage itself, on Metal the
// contents of a shared buffer (valid once the backend has synchronised).
// A tensor made by Slice shares storage with its parent.
type Tensor struct {
	Rows, Cols int
	Data       []float32
	dev        any // the backend's handle (nil on the CPU backend)
	devOff     int // offset of Data[0] in the handle, in elements
}

// Slice returns rows [r0, r1) of t as a tensor sharing t's storage.
func (t *Tensor) Slice(r0, r1 int) *Tensor {
	return &Tensor{Rows: r1 - r0, Cols: t.Cols, Data: t.Data[r0*t.Cols : r1*t.Cols], dev: t.dev, devOff: t.devOff + r0*t.Cols}
}

// Row returns row r of t.
func (t *Tensor) Row(r int) []float32 { return t.Data[r*t.Cols : (r+1)*t.Cols] }

// Segment is one sequence's share of an attention call. Its N queries are
// rows [Q, Q+N) of q and out; its keys and values are rows KV, KV+1, ... of k
// and v. Query i sits at position Past+i and attends to keys 0..Past+i,
// except keys at index >= Keys when Keys > 0 (padding, masked as keys only).
type Segment struct {
	Q, N int
	KV   int
	Past int
	Keys int
}

// Limit returns the last key index query i may attend to, or -1 if none.
func (s Segment) Limit(i int) int {
	j := s.Past + i
	if s.Keys > 0 && j >= s.Keys {
		j = s.Keys - 1
	}
	return j
}

// Backend is what the transformer is written against: the ops a device must
// provide. Shapes are implied by the tensors; every op writes its first
// argument(s) and reads the rest. Backends may queue work; Sync waits for it.
type Backend interface {
	// Name says which backend this is ("cpu", "metal").
	Name() string
	// NewTensor returns a zeroed rows×cols tensor.
	NewTensor(rows, cols int) *Tensor
	// Weight makes a read-only rows×cols tensor from stored weights. It may
	// use t.Data in place, so the hf.Weights must outlive the tensor.
	Weight(t *hf.StoredTensor, rows, cols int) *Tensor
	// Sync waits until all queued work has finished and Data views are current.
	Sync() error

	// MatMul: c = alpha·op(a)·op(b) (+ c when accumulate); see MatMul.
	MatMul(c, a, b *Tensor, transA, transB bool, alpha float32, accumulate bool)
	// AddBias adds bias (1×cols) to every row of x.
	AddBias(x, bias *Tensor)
	// Add sets out = a + b elementwise (out may alias a or b).
	Add(out, a, b *Tensor)
	// Scale multiplies x by s.
	Scale(x *Tensor, s float32)
	// SumSquares returns Σx² (float64 accumulation).
	SumSquares(x *Tensor) float64

	// Embed copies row ids[r] of table into row r of out (a gather).
	Embed(out, table *Tensor, ids []int32)
	// SetRows copies row r of src into row rows[r] of dst (a scatter).
	SetRows(dst, src *Tensor, rows []int32)
	// RMSNorm and its input gradient (the weight is frozen).
	RMSNorm(out, x, w *Tensor, eps float32)
	RMSNormBackward(dx, dy, x, w *Tensor, eps float32)
	// RoPE rotates each head of x in place by the angles of row pos[r] of
	// table (cos then sin, HeadDim/2 each); inverse rotates back (its gradient).
	RoPE(x, table *Tensor, pos []int32, headDim int, inverse bool)
	// Attention: causal softmax(q·kᵀ/√d)·v per segment with GQA; lse (rows×heads,
	// may be nil) keeps each row's log-sum-exp for the backward pass.
	Attention(out, lse, q, k, v *Tensor, segs []Segment, heads, kvHeads int)
	AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *Tensor, segs []Segment, heads, kvHeads int)
	// SiLUMul sets out = silu(gate)·up, and its gradients.
	SiLUMul(out, gate, up *Tensor)
	SiLUMulBackward(dgate, dup, dout, gate, up *Tensor)
	// CrossEntropy returns Σ over rows with label ≥ 0 of -log softmax(logits)[label]
	// and sets dlogits = scale·(softmax − onehot) on those rows, 0 elsewhere.
	// dlogits may be logits itself.
	CrossEntropy(dlogits, logits *Tensor, labels []int32, scale float32) float64
	// Dropout draws mask from seed (each element 0 with probability p, else
	// 1/(1-p)) and sets out = x·mask.
	Dropout(out, mask, x *Tensor, p float32, seed uint64)
	// Mul sets out = a·b elementwise (the dropout gradient: dx = dy·mask).
	Mul(out, a, b *Tensor)
	// AdamW updates param from grad with torch.optim.AdamW's arithmetic.
	AdamW(param, grad, m, v *Tensor, h AdamWParams)
}

// AdamWParams are one AdamW update's hyperparameters; Step counts from 1.
// MaxGradNorm is the clipping threshold the update applies first (see
// ClipFactor).
type AdamWParams struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	Step                               int
	MaxGradNorm                        float64
}

// ClipFactor is the factor gradient clipping multiplies every gradient by,
// from the sum of squares of all gradients: maxNorm / (norm + 1e-6), at most
// 1, as torch.nn.utils.clip_grad_norm_ computes it, in float32.
func ClipFactor(sumSquares, maxNorm float32) float32 {
	norm := float32(math.Sqrt(float64(sumSquares)))
	return min(1, maxNorm/(norm+1e-6))
}
