package cpu

import (
	"math"
	"sync"

	"github.com/goseal/ttt/nn"
)

// blockedMin is the segment length from which attention runs as matrix
// products per head instead of query by query.
const blockedMin = 16

// Attention computes, for every segment, head and query, the causal softmax
// attention of q (rows × heads·headDim) over k and v (rows × kvHeads·headDim),
// query head h reading key/value head h/(heads/kvHeads). lse, when not nil,
// receives each (row, head)'s log-sum-exp of the scaled scores (rows × heads).
// Long segments run as matrix products per head (S = q·kᵀ, softmax, P·v);
// short ones (decoding) query by query.
func Attention(out, lse, q, k, v []float32, segs []nn.Segment, s nn.AttnShape) {
	for i := range segs {
		if segs[i].N >= blockedMin {
			attentionBlocked(out, lse, q, k, v, segs[i], s)
		} else {
			attentionRows(out, lse, q, k, v, segs[i:i+1], s)
		}
	}
}

// AttentionBackward sets dq, dk and dv to the gradients of Attention for
// output gradient dout, recomputing the probabilities from q, k and the saved
// lse. Rows of padding keys get zero gradients.
func AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v []float32, segs []nn.Segment, s nn.AttnShape) {
	for i := range segs {
		if segs[i].N >= blockedMin {
			attentionBlockedBackward(dq, dk, dv, dout, out, lse, q, k, v, segs[i], s)
		} else {
			attentionRowsBackward(dq, dk, dv, dout, out, lse, q, k, v, segs[i:i+1], s)
		}
	}
}

// attnScratch holds one head's dense operands and score matrices.
type attnScratch struct{ qh, kh, vh, oh, doh, sc, dp, dkh, dvh []float32 }

var attnPool = sync.Pool{New: func() any { return new(attnScratch) }}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// gatherHead copies columns [col, col+d) of rows [row, row+n) of x (cols
// wide) into dst (n × d).
func gatherHead(dst, x []float32, row, n, cols, col, d int) {
	for i := 0; i < n; i++ {
		copy(dst[i*d:(i+1)*d], x[(row+i)*cols+col:(row+i)*cols+col+d])
	}
}

// scatterHead is gatherHead's inverse; with add it accumulates.
func scatterHead(x, src []float32, row, n, cols, col, d int, add bool) {
	for i := 0; i < n; i++ {
		dst := x[(row+i)*cols+col : (row+i)*cols+col+d]
		if !add {
			copy(dst, src[i*d:(i+1)*d])
			continue
		}
		for j, v := range src[i*d : (i+1)*d] {
			dst[j] += v
		}
	}
}

// segKeys is the number of keys any query of seg may see.
func segKeys(seg nn.Segment) int {
	keys := seg.Past + seg.N
	if seg.Keys > 0 {
		keys = min(keys, seg.Keys)
	}
	return keys
}

// softmaxRows turns scaled scores sc (n × keys) into probabilities in place,
// honouring each query's causal/padding limit (masked entries become 0), and
// returns nothing; lse gets each row's log-sum-exp when not nil.
func softmaxRows(sc []float32, seg nn.Segment, keys int, lse []float32, heads, h int) {
	parallelRows(seg.N, keys, rowFunc(func(i int) {
		row := sc[i*keys : (i+1)*keys]
		last := seg.Limit(i)
		if last < 0 {
			clear(row)
			if lse != nil {
				lse[(seg.Q+i)*heads+h] = float32(math.Inf(-1))
			}
			return
		}
		m := float32(math.Inf(-1))
		for _, x := range row[:last+1] {
			m = max(m, x)
		}
		var sum float32
		for j := range row[:last+1] {
			row[j] = float32(math.Exp(float64(row[j] - m)))
			sum += row[j]
		}
		inv := 1 / sum
		for j := range row[:last+1] {
			row[j] *= inv
		}
		clear(row[last+1:])
		if lse != nil {
			lse[(seg.Q+i)*heads+h] = m + float32(math.Log(float64(sum)))
		}
	}))
}

func attentionBlocked(out, lse, q, k, v []float32, seg nn.Segment, s nn.AttnShape) {
	d, qc, kc := s.HeadDim, s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	group := s.Heads / s.KVHeads
	scale := float32(1 / math.Sqrt(float64(d)))
	keys := segKeys(seg)
	w := attnPool.Get().(*attnScratch)
	defer attnPool.Put(w)
	w.qh, w.kh, w.vh = grow(w.qh, seg.N*d), grow(w.kh, keys*d), grow(w.vh, keys*d)
	w.oh, w.sc = grow(w.oh, seg.N*d), grow(w.sc, seg.N*keys)
	for g := 0; g < s.KVHeads; g++ {
		gatherHead(w.kh, k, seg.KV, keys, kc, g*d, d)
		gatherHead(w.vh, v, seg.KV, keys, kc, g*d, d)
		for h := g * group; h < (g+1)*group; h++ {
			gatherHead(w.qh, q, seg.Q, seg.N, qc, h*d, d)
			MatMulScaled(w.sc, w.qh, w.kh, seg.N, keys, d, false, true, scale, false)
			softmaxRows(w.sc, seg, keys, lse, s.Heads, h)
			MatMulScaled(w.oh, w.sc, w.vh, seg.N, d, keys, false, false, 1, false)
			scatterHead(out, w.oh, seg.Q, seg.N, qc, h*d, d, false)
		}
	}
}

func attentionBlockedBackward(dq, dk, dv, dout, out, lse, q, k, v []float32, seg nn.Segment, s nn.AttnShape) {
	d, qc, kc := s.HeadDim, s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	group := s.Heads / s.KVHeads
	scale := float32(1 / math.Sqrt(float64(d)))
	keys := segKeys(seg)
	clear(dk[seg.KV*kc : (seg.KV+seg.Past+seg.N)*kc])
	clear(dv[seg.KV*kc : (seg.KV+seg.Past+seg.N)*kc])
	w := attnPool.Get().(*attnScratch)
	defer attnPool.Put(w)
	w.qh, w.kh, w.vh = grow(w.qh, seg.N*d), grow(w.kh, keys*d), grow(w.vh, keys*d)
	w.oh, w.doh = grow(w.oh, seg.N*d), grow(w.doh, seg.N*d)
	w.sc, w.dp = grow(w.sc, seg.N*keys), grow(w.dp, seg.N*keys)
	w.dkh, w.dvh = grow(w.dkh, keys*d), grow(w.dvh, keys*d)
	for g := 0; g < s.KVHeads; g++ {
		gatherHead(w.kh, k, seg.KV, keys, kc, g*d, d)
		gatherHead(w.vh, v, seg.KV, keys, kc, g*d, d)
		clear(w.dkh)
		clear(w.dvh)
		for h := g * group; h < (g+1)*group; h++ {
			gatherHead(w.qh, q, seg.Q, seg.N, qc, h*d, d)
			gatherHead(w.oh, out, seg.Q, seg.N, qc, h*d, d)
			gatherHead(w.doh, dout, seg.Q, seg.N, qc, h*d, d)
			// P from the saved log-sum-exps: P = exp(scale·q·kᵀ − lse).
			MatMulScaled(w.sc, w.qh, w.kh, seg.N, keys, d, false, true, scale, false)
			parallelRows(seg.N, keys, rowFunc(func(i int) {
				row := w.sc[i*keys : (i+1)*keys]
				last := seg.Limit(i)
				l := lse[(seg.Q+i)*s.Heads+h]
				for j := range row {
					if j <= last {
						row[j] = float32(math.Exp(float64(row[j] - l)))
					} else {
						row[j] = 0
					}
				}
			}))
			// dV += Pᵀ·dO; dP = dO·vᵀ; dS = P∘(dP − rowsum(dO∘O))·scale.
			MatMulScaled(w.dvh, w.sc, w.doh, keys, d, seg.N, true, false, 1, true)
			MatMulScaled(w.dp, w.doh, w.vh, seg.N, keys, d, false, true, 1, false)
			parallelRows(seg.N, keys, rowFunc(func(i int) {
				var delta float32
				for x := 0; x < d; x++ {
					delta += w.doh[i*d+x] * w.oh[i*d+x]
				}
				p, dp := w.sc[i*keys:(i+1)*keys], w.dp[i*keys:(i+1)*keys]
				for j := range dp {
					dp[j] = p[j] * (dp[j] - delta) * scale
				}
			}))
			// dQ = dS·k; dK += dSᵀ·q.
			MatMulScaled(w.oh, w.dp, w.kh, seg.N, d, keys, false, false, 1, false)
			scatterHead(dq, w.oh, seg.Q, seg.N, qc, h*d, d, false)
			MatMulScaled(w.dkh, w.dp, w.qh, keys, d, seg.N, true, false, 1, true)
		}
		scatterHead(dk, w.dkh, seg.KV, keys, kc, g*d, d, true)
		scatterHead(dv, w.dvh, seg.KV, keys, kc, g*d, d, true)
	}
}
