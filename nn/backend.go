package nn

import (
	"fmt"
	"math"

	"github.com/goseal/ttt/hf"
)

// Tensor is a dense, row-major Rows×Cols array on a backend's device.
// Activations, gradients and optimizer state are F32; weights keep their
// stored dtype where the backend can use it (F32, F16 or BF16); token ids,
// positions, labels and row numbers are I32. Storage is the backend's
// allocation and Off the element offset of row 0 within it: code above the
// backend never reads or writes a tensor's memory except through the
// backend's Upload and Download, and makes views (Slice, View) only by
// offset arithmetic.
type Tensor struct {
	Rows, Cols int
	DType      hf.DType
	Storage    any
	Off        int
}

// Len is the number of elements, Rows·Cols.
func (t *Tensor) Len() int { return t.Rows * t.Cols }

// Slice returns rows [r0, r1) of t as a tensor sharing t's storage.
func (t *Tensor) Slice(r0, r1 int) *Tensor {
	if r0 < 0 || r1 < r0 || r1 > t.Rows {
		panic(fmt.Sprintf("nn: slice [%d, %d) of a tensor of %d rows", r0, r1, t.Rows))
	}
	return t.View(r0*t.Cols, r1-r0, t.Cols)
}

// View returns the rows×cols tensor that starts off elements into t and
// shares its storage.
func (t *Tensor) View(off, rows, cols int) *Tensor {
	if off < 0 || rows < 0 || cols < 0 || off+rows*cols > t.Len() {
		panic(fmt.Sprintf("nn: view of %d×%d at %d outside a tensor of %d elements", rows, cols, off, t.Len()))
	}
	return &Tensor{Rows: rows, Cols: cols, DType: t.DType, Storage: t.Storage, Off: t.Off + off}
}

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

// AttnShape gives attention's dimensions: Heads query heads and KVHeads
// key/value heads of HeadDim each.
type AttnShape struct{ Heads, KVHeads, HeadDim int }

// Backend is what the transformer is written against: the ops a device must
// provide. Shapes are implied by the tensors; every op writes its first
// argument(s) and reads the rest. A backend may queue ops and run them later,
// in order; Upload is ordered with them (ops queued before it read the old
// contents). Download and Sync wait for the queued work, and are the only
// places where the host waits. Errors of queued work surface there.
type Backend interface {
	// Name says which backend this is ("cpu", "metal").
	Name() string
	// NewTensor returns a zeroed rows×cols tensor of type F32 or I32.
	NewTensor(dt hf.DType, rows, cols int) *Tensor
	// Weight makes a read-only rows×cols tensor from stored weights, in
	// their dtype or widened. It may use t's memory in place, so the weights
	// must outlive the tensor.
	Weight(t *hf.StoredTensor, rows, cols int) *Tensor
	// Upload copies dst.Len() values of src into the F32 tensor dst;
	// UploadInts does the same for an I32 tensor.
	Upload(dst *Tensor, src []float32)
	UploadInts(dst *Tensor, src []int32)
	// Download waits for the queued work and copies the F32 tensor src
	// into dst (src.Len() values); DownloadInts does the same for I32.
	Download(dst []float32, src *Tensor) error
	DownloadInts(dst []int32, src *Tensor) error
	// Sync waits until all queued work has finished.
	Sync() error
	// Free gives back the storage of t, a tensor made by NewTensor (not a
	// view), for reuse once the work queued so far is done; neither t nor
	// its views may be used after. Backends whose memory the garbage
	// collector manages may do nothing.
	Free(t *Tensor)

	// MatMul: c = alpha·op(a)·op(b) (+ c when accumulate).
	MatMul(c, a, b *Tensor, transA, transB bool, alpha float32, accumulate bool)
	// AddBias adds bias (1×cols) to every row of x.
	AddBias(x, bias *Tensor)
	// Add sets out = a + b elementwise (out may alias a or b).
	Add(out, a, b *Tensor)
	// Copy sets dst = src.
	Copy(dst, src *Tensor)
	// Fill sets every element of x to v.
	Fill(x *Tensor, v float32)

	// Embed copies row ids[r] of table into row r of out (a gather; ids I32).
	Embed(out, table, ids *Tensor)
	// SetRows copies row r of src into row rows[r] of dst (a scatter; rows I32).
	SetRows(dst, src, rows *Tensor)
	// RMSNorm and its input gradient (the weight is frozen).
	RMSNorm(out, x, w *Tensor, eps float32)
	RMSNormBackward(dx, dy, x, w *Tensor, eps float32)
	// RoPE rotates each head of x in place by the angles of row pos[r] of
	// table (cos then sin, HeadDim/2 each; pos I32); inverse rotates back
	// (its gradient).
	RoPE(x, table, pos *Tensor, headDim int, inverse bool)
	// Attention: causal softmax(q·kᵀ/√d)·v per segment with GQA; lse
	// (rows×heads, may be nil) keeps each row's log-sum-exp for the backward
	// pass. Segments are host-side shape information, like rows and cols.
	Attention(out, lse, q, k, v *Tensor, segs []Segment, heads, kvHeads int)
	AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *Tensor, segs []Segment, heads, kvHeads int)
	// SiLUMul sets out = silu(gate)·up, and its gradients.
	SiLUMul(out, gate, up *Tensor)
	SiLUMulBackward(dgate, dup, dout, gate, up *Tensor)
	// Dropout sets out = x·mask, the mask drawn from seed by DropoutKey and
	// DropoutUniform (0 with probability p, else DropoutScale(p)). The same
	// seed gives the same mask, which is also the op's gradient. out may be x.
	Dropout(out, x *Tensor, p float32, seed uint64)

	// CrossEntropy sets losses[r] (rows×1) to -log softmax(logits[r])[labels[r]]
	// and dlogits[r] to scale·(softmax − onehot) for labels[r] ≥ 0 (labels
	// I32), and both to 0 elsewhere. dlogits may be logits itself.
	CrossEntropy(dlogits, losses, logits, labels *Tensor, scale float32)
	// Sum sets dst (1×1) to Σx, or adds Σx to it when accumulate is set.
	Sum(dst, x *Tensor, accumulate bool)
	// SumSquares sets dst (1×1) to Σx².
	SumSquares(dst, x *Tensor)
	// AdamW updates param from grad·ClipFactor(gradSumSquares, h.MaxGradNorm)
	// with torch.optim.AdamW's arithmetic; gradSumSquares is 1×1 on the device.
	AdamW(param, grad, m, v *Tensor, h AdamWParams, gradSumSquares *Tensor)
	// Sample sets ids[r] (I32) to the token drawn from row r of logits with
	// uniform u[r] (see cpu.Sample for the rule; temperature 0 is argmax and
	// ignores u, which may then be nil).
	Sample(ids, logits, u *Tensor, temperature, topP float32)
}

// MatMulDims returns the m, n, k of c = op(a)·op(b) and panics, naming the
// shapes, when c, a and b do not agree; backends check MatMul with it.
func MatMulDims(c, a, b *Tensor, transA, transB bool) (m, n, k int) {
	m, k = a.Rows, a.Cols
	if transA {
		m, k = k, m
	}
	n = b.Cols
	if transB {
		n = b.Rows
	}
	if c.Rows != m || c.Cols != n || (transB && b.Cols != k) || (!transB && b.Rows != k) {
		panic(fmt.Sprintf("nn: MatMul shapes c %d×%d, a %d×%d, b %d×%d (transA %v, transB %v) do not agree", c.Rows, c.Cols, a.Rows, a.Cols, b.Rows, b.Cols, transA, transB))
	}
	return m, n, k
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
