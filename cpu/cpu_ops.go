package cpu

import (
	"math"
	"runtime"
	"sync"

	"github.com/goseal/ttt/nn"
)

// This file holds the CPU backend's ops as plain functions over float32
// slices. They are also the references every Metal kernel is tested against.

// MatMul computes c = op(a)·op(b), or c += op(a)·op(b) when accumulate is set.
// c is m×n; op(a) is m×k (a is k×m when transA); op(b) is k×n (b is n×k when
// transB). All matrices are dense and row-major. A linear layer y = x·Wᵀ with
// W stored [out, in] is MatMul(y, x, W, rows, out, in, false, true, false).
func MatMul(c, a, b []float32, m, n, k int, transA, transB, accumulate bool) {
	MatMulScaled(c, a, b, m, n, k, transA, transB, 1, accumulate)
}

// MatMulScaled is MatMul with the product scaled by alpha.
func MatMulScaled(c, a, b []float32, m, n, k int, transA, transB bool, alpha float32, accumulate bool) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !accumulate {
			clear(c[:m*n])
		}
		return
	}
	gemm(c, a, b, m, n, k, transA, transB, alpha, accumulate)
}

// RMSNorm sets out[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) * weight for
// each of rows rows of cols values, accumulating the mean square in float32
// as transformers' Qwen2RMSNorm and LlamaRMSNorm do.
func RMSNorm(out, x, weight []float32, rows, cols int, eps float32) {
	parallelRows(rows, cols, rmsNormOp{out, x, weight, cols, eps})
}

type rmsNormOp struct {
	out, x, weight []float32
	cols           int
	eps            float32
}

func (o rmsNormOp) row(r int) {
	xr := o.x[r*o.cols : (r+1)*o.cols]
	or := o.out[r*o.cols : (r+1)*o.cols]
	inv := rmsInv(xr, o.eps)
	for i, v := range xr {
		or[i] = o.weight[i] * (v * inv)
	}
}

// rmsInv returns 1/sqrt(mean(x²)+eps).
func rmsInv(x []float32, eps float32) float32 {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	return float32(1 / math.Sqrt(float64(ss/float32(len(x))+eps)))
}

// rowOp is an op computed row by row: row(r) computes row r.
type rowOp interface{ row(r int) }

// rowFunc runs a closure as a rowOp.
type rowFunc func(r int)

func (f rowFunc) row(r int) { f(r) }

// parallelRows runs op.row for every row in [0, rows), spreading rows over
// the machine's cores when the work (rows·cost) is large enough to pay for
// it. An op passed by value (a struct, not a closure) costs no allocation
// on the serial path: only the parallel path copies it to the heap, so
// small steps such as decoding one token allocate nothing.
func parallelRows[T rowOp](rows, cost int, op T) {
	workers := min(runtime.GOMAXPROCS(0), rows)
	if workers <= 1 || rows*cost < 1<<15 {
		for r := 0; r < rows; r++ {
			op.row(r)
		}
		return
	}
	shared := new(T)
	*shared = op
	var wg sync.WaitGroup
	chunk := (rows + workers - 1) / workers
	for lo := 0; lo < rows; lo += chunk {
		hi := min(lo+chunk, rows)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			for r := lo; r < hi; r++ {
				(*shared).row(r)
			}
		}(lo, hi)
	}
	wg.Wait()
}

// RMSNormBackward sets dx to the gradient of RMSNorm's input for output
// gradient dy: with r = 1/rms(x), dx = r·(w·dy) − x·r³·mean(x·w·dy).
func RMSNormBackward(dx, dy, x, weight []float32, rows, cols int, eps float32) {
	parallelRows(rows, cols, rowFunc(func(r int) {
		xr, dyr, dxr := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
		inv := rmsInv(xr, eps)
		var dot float32
		for i, v := range xr {
			dot += v * weight[i] * dyr[i]
		}
		c := inv * inv * inv * dot / float32(cols)
		for i, v := range xr {
			dxr[i] = inv*weight[i]*dyr[i] - v*c
		}
	}))
}

// Embed copies row ids[r] of table (cols wide) into row r of out.
func Embed(out, table []float32, ids []int32, cols int) {
	for r, id := range ids {
		copy(out[r*cols:(r+1)*cols], table[int(id)*cols:(int(id)+1)*cols])
	}
}

// RoPE rotates every head (headDim wide) of every row of x in place by the
// angles of table row pos[r], in transformers' rotate_half layout: the pair
// (x[i], x[i+half]) turns by angle i. inverse turns the other way, which is
// also the rotation's gradient.
func RoPE(x, table []float32, pos []int32, rows, cols, headDim int, inverse bool) {
	parallelRows(rows, cols, ropeOp{x, table, pos, cols, headDim, inverse})
}

type ropeOp struct {
	x, table      []float32
	pos           []int32
	cols, headDim int
	inverse       bool
}

func (o ropeOp) row(r int) {
	d, half := o.headDim, o.headDim/2
	t := o.table[int(o.pos[r])*d : (int(o.pos[r])+1)*d]
	cos, sin := t[:half], t[half:]
	xr := o.x[r*o.cols : (r+1)*o.cols]
	for h := 0; h < o.cols; h += d {
		a, b := xr[h:h+half], xr[h+half:h+d]
		for i := range a {
			s := sin[i]
			if o.inverse {
				s = -s
			}
			a[i], b[i] = a[i]*cos[i]-b[i]*s, b[i]*cos[i]+a[i]*s
		}
	}
}

// attentionRows is Attention computed query by query (one dot product per
// key, with a running maximum and sum so no score is stored): the plain
// form, used for short segments (decoding) and as the reference of the
// blocked form. Segments run in parallel.
func attentionRows(out, lse, q, k, v []float32, segs []nn.Segment, s nn.AttnShape) {
	cost := segs[0].N * (segs[0].Past + segs[0].N) * s.Heads * s.HeadDim
	parallelRows(len(segs), cost, attnRowsOp{out, lse, q, k, v, segs, s})
}

// attnRowsOp's rows are segments.
type attnRowsOp struct {
	out, lse, q, k, v []float32
	segs              []nn.Segment
	s                 nn.AttnShape
}

func (o attnRowsOp) row(si int) {
	s, q, k, v, out, lse := o.s, o.q, o.k, o.v, o.out, o.lse
	qc, kc, d := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim, s.HeadDim
	group := s.Heads / s.KVHeads
	scale := float32(1 / math.Sqrt(float64(d)))
	seg := o.segs[si]
	for i := 0; i < seg.N; i++ {
		row := seg.Q + i
		last := seg.Limit(i)
		for h := 0; h < s.Heads; h++ {
			qh := q[row*qc+h*d : row*qc+(h+1)*d]
			oh := out[row*qc+h*d : row*qc+(h+1)*d]
			kvh := (h / group) * d
			clear(oh)
			m, sum := float32(math.Inf(-1)), float32(0)
			for j := 0; j <= last; j++ {
				kr := k[(seg.KV+j)*kc+kvh : (seg.KV+j)*kc+kvh+d]
				var dot float32
				for x := range qh {
					dot += qh[x] * kr[x]
				}
				sc := dot * scale
				if sc > m {
					// A new maximum: rescale what was summed so far.
					r := float32(math.Exp(float64(m - sc)))
					sum *= r
					for x := range oh {
						oh[x] *= r
					}
					m = sc
				}
				p := float32(math.Exp(float64(sc - m)))
				sum += p
				vr := v[(seg.KV+j)*kc+kvh : (seg.KV+j)*kc+kvh+d]
				for x := range oh {
					oh[x] += p * vr[x]
				}
			}
			if last >= 0 {
				inv := 1 / sum
				for x := range oh {
					oh[x] *= inv
				}
			}
			if lse != nil {
				lse[row*s.Heads+h] = m + float32(math.Log(float64(sum)))
			}
		}
	}
}

// attentionRowsBackward is AttentionBackward computed query by query.
func attentionRowsBackward(dq, dk, dv, dout, out, lse, q, k, v []float32, segs []nn.Segment, s nn.AttnShape) {
	qc, kc, d := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim, s.HeadDim
	group := s.Heads / s.KVHeads
	scale := float32(1 / math.Sqrt(float64(d)))
	// dq rows are independent; dk/dv rows are shared by every query of a
	// segment and every head of a group, so each KV head is one task that
	// walks its queries in order.
	for _, seg := range segs {
		keys := seg.Past + seg.N
		if seg.Keys > 0 {
			keys = min(keys, seg.Keys)
		}
		clear(dk[seg.KV*kc : (seg.KV+seg.Past+seg.N)*kc])
		clear(dv[seg.KV*kc : (seg.KV+seg.Past+seg.N)*kc])
		parallelRows(s.KVHeads, seg.N*keys*d*group, rowFunc(func(g int) {
			probs := make([]float32, keys)
			for h := g * group; h < (g+1)*group; h++ {
				for i := 0; i < seg.N; i++ {
					row := seg.Q + i
					last := seg.Limit(i)
					qh := q[row*qc+h*d : row*qc+(h+1)*d]
					dqh := dq[row*qc+h*d : row*qc+(h+1)*d]
					doh := dout[row*qc+h*d : row*qc+(h+1)*d]
					oh := out[row*qc+h*d : row*qc+(h+1)*d]
					clear(dqh)
					if last < 0 {
						continue
					}
					l := lse[row*s.Heads+h]
					var delta float32 // Σ_j p_j·(dout·v_j) = dout·out
					for x := range doh {
						delta += doh[x] * oh[x]
					}
					for j := 0; j <= last; j++ {
						kr := k[(seg.KV+j)*kc+g*d : (seg.KV+j)*kc+(g+1)*d]
						var dot float32
						for x := range qh {
							dot += qh[x] * kr[x]
						}
						probs[j] = float32(math.Exp(float64(dot*scale - l)))
					}
					for j := 0; j <= last; j++ {
						p := probs[j]
						kr := k[(seg.KV+j)*kc+g*d : (seg.KV+j)*kc+(g+1)*d]
						vr := v[(seg.KV+j)*kc+g*d : (seg.KV+j)*kc+(g+1)*d]
						dkr := dk[(seg.KV+j)*kc+g*d : (seg.KV+j)*kc+(g+1)*d]
						dvr := dv[(seg.KV+j)*kc+g*d : (seg.KV+j)*kc+(g+1)*d]
						var dp float32
						for x := range doh {
							dp += doh[x] * vr[x]
							dvr[x] += p * doh[x]
						}
						ds := p * (dp - delta) * scale
						for x := range dqh {
							dqh[x] += ds * kr[x]
							dkr[x] += ds * qh[x]
						}
					}
				}
			}
		}))
	}
}

// SiLUMul sets out = silu(gate)·up, silu(x) = x/(1+e^-x).
func SiLUMul(out, gate, up []float32) {
	parallelRows(len(out)/1024+1, 1024*8, siluMulOp{out, gate, up})
}

// siluMulOp's rows are chunks of 1024 elements.
type siluMulOp struct{ out, gate, up []float32 }

func (o siluMulOp) row(c int) {
	lo, hi := c*1024, min((c+1)*1024, len(o.out))
	for i := lo; i < hi; i++ {
		g := o.gate[i]
		o.out[i] = g / (1 + float32(math.Exp(float64(-g)))) * o.up[i]
	}
}

// SiLUMulBackward sets the gradients of SiLUMul: dup = dout·silu(gate),
// dgate = dout·up·σ(gate)·(1 + gate·(1−σ(gate))).
func SiLUMulBackward(dgate, dup, dout, gate, up []float32) {
	parallelRows(len(dout)/1024+1, 1024*8, rowFunc(func(c int) {
		lo, hi := c*1024, min((c+1)*1024, len(dout))
		for i := lo; i < hi; i++ {
			g := gate[i]
			sig := 1 / (1 + float32(math.Exp(float64(-g))))
			dup[i] = dout[i] * g * sig
			dgate[i] = dout[i] * up[i] * sig * (1 + g*(1-sig))
		}
	}))
}

// CrossEntropy sets, for each row r with labels[r] ≥ 0, losses[r] to
// -log softmax(logits[r])[labels[r]] and dlogits[r] to
// scale·(softmax(logits[r]) − onehot(labels[r])); rows with a negative label
// get loss 0 and a zero gradient. dlogits may be logits itself. Each row's
// log-sum-exp is accumulated in float64.
func CrossEntropy(dlogits, losses, logits []float32, labels []int32, cols int, scale float32) {
	parallelRows(len(labels), cols, rowFunc(func(r int) {
		lr, dr := logits[r*cols:(r+1)*cols], dlogits[r*cols:(r+1)*cols]
		if labels[r] < 0 {
			losses[r] = 0
			clear(dr)
			return
		}
		target := lr[labels[r]] // read before dr (which may be lr) is written
		m := float32(math.Inf(-1))
		for _, v := range lr {
			m = max(m, v)
		}
		// One exponential per logit: dr holds exp(v−m) until scaled.
		var sum float64
		for i, v := range lr {
			e := math.Exp(float64(v - m))
			dr[i] = float32(e)
			sum += e
		}
		losses[r] = float32(float64(m) + math.Log(sum) - float64(target))
		k := float32(float64(scale) / sum)
		for i := range dr {
			dr[i] *= k
		}
		dr[labels[r]] -= scale
	}))
}

// Sum returns the sum of x, accumulated in float64.
func Sum(x []float32) float32 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return float32(s)
}

// SumSquares returns the sum of the squares of x, accumulated in float64.
func SumSquares(x []float32) float32 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return float32(s)
}

// Dropout sets out = x·mask, where element i of the mask is 0 when
// nn.DropoutUniform(key, i) < p and nn.DropoutScale(p) otherwise. out may
// be x. The same key gives the same mask, so the backward pass applies the
// forward's mask by calling Dropout again.
func Dropout(out, x []float32, p float32, key uint32) {
	scale := nn.DropoutScale(p)
	for i, v := range x {
		if nn.DropoutUniform(key, uint32(i)) < p {
			out[i] = 0
		} else {
			out[i] = v * scale
		}
	}
}

// AdamW applies one step of torch.optim.AdamW (the single-tensor path) to
// param, in its order of float32 operations: decoupled weight decay, moment
// updates, bias-corrected step. Each gradient is first multiplied by clip,
// the clipping factor (nn.ClipFactor), as clip_grad_norm_ scales gradients in
// place before the optimizer reads them.
func AdamW(param, grad, m, v []float32, h nn.AdamWParams, clip float32) {
	decay, b1, b2, bc2sqrt, stepSize, eps := AdamWScalars(h)
	for i, g := range grad {
		g *= clip
		param[i] *= decay
		m[i] += (g - m[i]) * (1 - b1)
		v[i] = v[i]*b2 + (1-b2)*g*g
		denom := float32(math.Sqrt(float64(v[i])))/bc2sqrt + eps
		param[i] -= stepSize * (m[i] / denom)
	}
}

// AdamWScalars derives the float32 scalars of one AdamW step from h, in
// float64 as torch does: the weight-decay factor 1 − lr·wd, the betas, the
// square root of the second moment's bias correction, the step size lr/(1 −
// β1^step), and eps. AdamW and the Metal kernel both use them.
func AdamWScalars(h nn.AdamWParams) (decay, b1, b2, bc2sqrt, stepSize, eps float32) {
	bc1 := 1 - math.Pow(h.Beta1, float64(h.Step))
	return float32(1 - h.LR*h.WeightDecay), float32(h.Beta1), float32(h.Beta2),
		float32(math.Sqrt(1 - math.Pow(h.Beta2, float64(h.Step)))), float32(h.LR / bc1), float32(h.Eps)
}
