package kernels

import (
	"fmt"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/metal"
)

// A gemmTile is one instantiation of the tiled matmul kernel: a threadgroup
// of wm×wn SIMD groups computes a bm×bn block of c.
type gemmTile struct {
	name           string
	bm, bn, wm, wn int
}

var (
	tile64x64 = gemmTile{"64x64", 64, 64, 2, 2}
	tile32x32 = gemmTile{"32x32", 32, 32, 2, 2}
	tile64x16 = gemmTile{"64x16", 64, 16, 4, 1}
	tile16x64 = gemmTile{"16x64", 16, 64, 1, 4}
	gemmTiles = []gemmTile{tile64x64, tile32x32, tile64x16, tile16x64}
)

// Shape classes. A product of at most matRows rows through a transposed
// matrix (decoding through a linear layer) reads the matrix once per 8 rows
// with matvec_t. One row through a matrix not transposed goes to matvec_n,
// whose threads each run the whole depth, only while k ≤ matvecDepth. Large tiles need at least bigGroups threadgroups to be
// chosen, so a mid-sized product still spreads over every GPU core. Split-K
// runs when the tiles of c give fewer than splitGroups threadgroups: it adds
// layers along k, each at least splitDepth deep (so a partial's write and
// read are small next to its multiply-adds), at most maxSplits of them, and
// at most maxPartials floats of partials.
const (
	matRows     = 16
	matvecDepth = 4096
	bigGroups   = 64
	splitGroups = 512
	splitDepth  = 512
	splitAlign  = 32 // a multiple of every tile's k step
	maxSplits   = 32
	maxPartials = 1 << 24
)

// gemmPlan is how a product runs on the tiled kernel.
type gemmPlan struct {
	tile   gemmTile
	splits int // layers along k; 1 is no split
	kSplit int // the depth of each layer
}

// planGEMM chooses the tile and the split of an m×n×k product. It depends
// on the shape only, so MatMulScratch can size the scratch buffer.
func planGEMM(m, n, k int) gemmPlan {
	t := tile32x32
	switch {
	case n <= 16 && m > 16:
		t = tile64x16
	case m <= 16 && n > 16:
		t = tile16x64
	case ceilDiv(m, 64)*ceilDiv(n, 64) >= bigGroups:
		t = tile64x64
	}
	p := gemmPlan{tile: t, splits: 1, kSplit: max(k, 1)}
	groups := ceilDiv(m, t.bm) * ceilDiv(n, t.bn)
	if groups >= splitGroups {
		return p
	}
	s := min(ceilDiv(splitGroups, groups), k/splitDepth, maxSplits, maxPartials/(m*n))
	if s < 2 {
		return p
	}
	p.kSplit = ceilDiv(ceilDiv(k, s), splitAlign) * splitAlign
	p.splits = ceilDiv(k, p.kSplit)
	return p
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// MatMulScratch returns the bytes of scratch memory MatMul needs for an
// m×n×k product: room for the split-K partials, 0 when the product is not
// split. It depends on the shape alone (not on the types or transposes); a
// product that takes a matrix-vector kernel needs none of what it returns.
func MatMulScratch(m, n, k int) int {
	if m <= 0 || n <= 0 || k <= 0 {
		return 0
	}
	p := planGEMM(m, n, k)
	if p.splits == 1 {
		return 0
	}
	return 4 * p.splits * m * n
}

// MatMul encodes c = alpha·op(a)·op(b), or c += alpha·op(a)·op(b) when
// accumulate is set, with the meaning of cpu.MatMulScaled: c is m×n float32;
// op(a) is m×k float32 (a is stored k×m when transA); op(b) is k×n with
// elements of type bt (b is stored n×k when transB). All row-major. A
// linear layer y = x·Wᵀ with W stored [out, in] is MatMul(e, y, x, W, dt,
// rows, out, in, false, true, 1, false, scratch). scratch holds the split-K
// partials: at least MatMulScratch(m, n, k) bytes (a zero Buf where that is
// 0). The result is the same on every run.
//
// Kernels by shape:
//   - one row (m == 1), b transposed: matvec_t, a SIMD group per output
//     (decoding through a linear layer, the LM head);
//   - one row, b not transposed, k ≤ 4096: matvec_n, a thread per output
//     (longer rows take the tiled kernel, split along k);
//   - 2..16 rows, b transposed, a not: matvec_t, each weight row read once
//     per 8 rows (decoding a few sequences);
//   - otherwise the tiled kernel with 8×8 SIMD-group matrices: 64x16 tiles
//     (4 SIMD groups stacked) when n ≤ 16 (LoRA's x·Aᵀ and gradients at rank
//     ≤ 16), 16x64 (4 side by side) when m ≤ 16 (dA = duᵀ·x), 64x64 (2×2
//     SIMD groups of 32×32) when that still gives 64 threadgroups or more
//     (layers over many tokens, the LM head), 32x32 (2×2 of 16×16) else;
//   - split-K on top of a tiled kernel when c has fewer than 512 tiles and
//     k is long (LoRA's dA and dB over many tokens, the LM head's backward
//     product with k the vocabulary): up to 32 layers of at least 512 along
//     k write partials to scratch, and matmul_reduce sums them in order.
func (l *Library) MatMul(e *metal.Encoder, c, a, b Buf, bt hf.DType, m, n, k int, transA, transB bool, alpha float32, accumulate bool, scratch Buf) error {
	if m < 0 || n < 0 || k < 0 || m*n >= 1<<32 || m*k >= 1<<32 || n*k >= 1<<32 {
		return fmt.Errorf("kernels: matmul: bad shape m=%d n=%d k=%d", m, n, k)
	}
	if _, ok := weightType(bt); !ok {
		return fmt.Errorf("kernels: matmul: bad weight type %v", bt)
	}
	if m == 0 || n == 0 {
		return nil
	}
	if err := need("matmul", "c", c, 4*m*n); err != nil {
		return err
	}
	if err := need("matmul", "a", a, 4*m*k); err != nil {
		return err
	}
	if err := need("matmul", "b", b, bt.Size()*k*n); err != nil {
		return err
	}
	if (m == 1 && (transB || k <= matvecDepth)) || (transB && !transA && m <= matRows) {
		l.matvec(e, c, a, b, bt, m, n, k, transB, alpha, accumulate)
		return nil
	}
	return l.gemm(e, c, a, b, bt, m, n, k, transA, transB, alpha, accumulate, scratch)
}

// matvec encodes a product of a few rows on matvec_t (transB) or of one row
// on matvec_n. One row of a reads the same transposed or not.
func (l *Library) matvec(e *metal.Encoder, c, a, b Buf, bt hf.DType, m, n, k int, transB bool, alpha float32, accumulate bool) {
	// Vector loads take 4 aligned elements: k and the offsets multiples of 4
	// elements.
	vecA := k%4 == 0 && a.Off%16 == 0
	vecB := k%4 == 0 && b.Off%(4*bt.Size()) == 0
	name := "matvec_n_"
	groups, threads := metal.Size{X: ceilDiv(n, 256), Y: 1, Z: 1}, metal.Size{X: 256, Y: 1, Z: 1}
	if transB {
		name = "matvec_t_"
		groups, threads = metal.Size{X: ceilDiv(n, 8), Y: ceilDiv(m, 8), Z: 1}, metal.Size{X: 8 * 32, Y: 1, Z: 1}
	}
	suffix, _ := weightType(bt)
	e.SetPipeline(l.pipes[name+suffix])
	bind(e, 0, a)
	bind(e, 1, b)
	bind(e, 2, c)
	e.SetBytes(3, params(m, n, k, false, transB, accumulate, alpha, k, vecA, vecB))
	e.Dispatch(groups, threads)
}

// gemm encodes a product on the tiled kernel, split along k (partials in
// scratch, then matmul_reduce) where planGEMM says so.
func (l *Library) gemm(e *metal.Encoder, c, a, b Buf, bt hf.DType, m, n, k int, transA, transB bool, alpha float32, accumulate bool, scratch Buf) error {
	p := planGEMM(m, n, k)
	out, outAlpha, outAccumulate := c, alpha, accumulate
	if p.splits > 1 {
		if err := need("matmul", "scratch", scratch, 4*p.splits*m*n); err != nil {
			return err
		}
		out, outAlpha, outAccumulate = scratch, 1, false
	}
	// Vector loads take 4 aligned elements: a leading dimension and an
	// offset that are multiples of 4 elements.
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	vecA := lda%4 == 0 && a.Off%16 == 0
	vecB := ldb%4 == 0 && b.Off%(4*bt.Size()) == 0
	suffix, _ := weightType(bt)
	e.SetPipeline(l.pipes["matmul_"+p.tile.name+"_"+suffix])
	bind(e, 0, a)
	bind(e, 1, b)
	bind(e, 2, out)
	e.SetBytes(3, params(m, n, k, transA, transB, outAccumulate, outAlpha, p.kSplit, vecA, vecB))
	e.Dispatch(metal.Size{X: ceilDiv(m, p.tile.bm) * ceilDiv(n, p.tile.bn), Y: 1, Z: p.splits},
		metal.Size{X: 32 * p.tile.wm * p.tile.wn, Y: 1, Z: 1})
	if p.splits > 1 {
		e.SetPipeline(l.pipes["matmul_reduce"])
		bind(e, 0, scratch)
		bind(e, 1, c)
		e.SetBytes(2, params(m*n, p.splits, alpha, accumulate))
		e.Dispatch(metal.Size{X: ceilDiv(m*n, 256), Y: 1, Z: 1}, metal.Size{X: 256, Y: 1, Z: 1})
	}
	return nil
}
