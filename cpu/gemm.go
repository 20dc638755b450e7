package cpu

import (
	"runtime"
	"sync"
)

// This file is the CPU backend's matrix product (SGEMM). A large product is
// computed in blocks: a kc-deep slab of op(b), nc columns wide, is copied
// ("packed") into nr-wide column strips, a slab of op(a), mc rows high, into
// mr-high row strips, and a register-blocked micro-kernel multiplies one
// mr-row strip by one nr-column strip into an mr×nr tile of c. Packing turns
// every transpose into the same contiguous layout and keeps the operands of
// the inner loops in the L1 and L2 caches. A product with one row or one
// column, or a linear layer's product x·Wᵀ for up to gemmDotRows rows of x,
// reads the matrix once, as dot products or scaled row sums, without packing;
// a tiny product is a plain loop. Work is split over the cores by columns (or rows)
// of c, run by helper goroutines that live as long as the process and keep
// their packing buffers, so a product allocates nothing once warm.

// gemmKernel multiplies a packed mr×k strip of op(a) (column by column) by a
// packed k×nr strip of op(b) (row by row) and stores alpha times the product
// into the mr×nr tile of c whose rows start ldc apart, adding the tile's old
// value when load is set.
type gemmKernel func(k int, a, b, c []float32, ldc int, alpha float32, load bool)

// gemmKernels is a micro-kernel with its tile size and vector helpers:
// dots4 sets s[r] = x[:k]·m[r*ld:r*ld+k] for r < 4 (k a multiple of 8);
// dots4x4, where not nil, sets s[4*i+j] = a[i*lda:i*lda+k]·b[j*ldb:j*ldb+k]
// for i, j < 4 (k a multiple of 16); axpy adds alpha·x to y (at least as
// long as x); transpose8, where not nil, sets dst[p*ldd+r] = src[r*ld+p] for
// r < 8 and p < kb (a multiple of 8).
type gemmKernels struct {
	mr, nr     int
	tile       gemmKernel
	dots4      func(k int, x, m []float32, ld int, s []float32)
	dots4x4    func(k int, a []float32, lda int, b []float32, ldb int, s []float32)
	axpy       func(alpha float32, x, y []float32)
	transpose8 func(kb int, src []float32, ld int, dst []float32, ldd int)
}

// gemmGo are the portable kernels; gemm_amd64.go replaces them with
// assembly where the CPU has AVX2 and FMA.
var (
	gemmGo = gemmKernels{mr: 4, nr: 4, tile: gemmKernel4x4, dots4: dots4Go, axpy: axpyGo}
	kern   = gemmGo
)

// Blocking: kc is the depth of a packed slab, so an nr-wide strip of op(b)
// (kc·nr floats) stays in L1 while the mr-high strips of op(a) stream past it
// from L2; gemmMC and gemmNC bound the packed slabs of op(a) and op(b)
// (rounded down to whole strips) to about 350 KB and 2 MB.
const (
	gemmKC = 256
	gemmMC = 336
	gemmNC = 2048
)

// Thresholds, in multiply-adds: a product below gemmSmall is a plain loop;
// each goroutine of a parallel product gets at least gemmPerWorker (about
// 25 µs on one core; waking a helper costs some of that).
const (
	gemmSmall     = 1 << 14
	gemmPerWorker = 1 << 22
)

// gemmDotRows is the most rows of a linear layer's input (c = a·bᵀ) computed
// as dot products rather than packed: for a few rows, the cost is reading b,
// which packing would read and write once more.
const gemmDotRows = 64

// gemmKind is how a task is computed.
type gemmKind uint8

const (
	gemmPacked gemmKind = iota // blocked, packed product
	gemmDots                   // c[i,j] = alpha·(row i of a · row j of b)
	gemmAxpys                  // c = alpha·Σ_p a[p]·(row p of b), with m = 1
)

// gemmTask is the part of a product that one goroutine computes: rows
// [i0,i1) and columns [j0,j1) of c = alpha·op(a)·op(b) (+c). The kinds other
// than gemmPacked ignore transA and transB and take a and b as stored.
type gemmTask struct {
	kind           gemmKind
	c, a, b        []float32
	m, n, k        int
	transA, transB bool
	alpha          float32
	accumulate     bool
	i0, i1, j0, j1 int
}

// gemmBuffers are one goroutine's packing buffers.
type gemmBuffers struct {
	a, b, tile []float32
	dots       [16]float32
}

// gemmPool holds the helper goroutines and the calling goroutine's buffers.
// A product too small to split, or one that finds the pool busy (another
// goroutine is multiplying), runs alone with buffers from spareBuffers.
var gemmPool struct {
	sync.Mutex
	main    gemmBuffers
	helpers []*gemmHelper
	done    sync.WaitGroup
}

var spareBuffers = sync.Pool{New: func() any { return new(gemmBuffers) }}

// gemmHelper is a goroutine that computes the tasks sent to it.
type gemmHelper struct {
	task  gemmTask
	start chan struct{}
	buf   gemmBuffers
}

func (h *gemmHelper) loop() {
	for range h.start {
		h.task.run(&h.buf)
		h.task = gemmTask{} // drop the matrices
		gemmPool.done.Done()
	}
}

// gemm computes c (m×n) = alpha·op(a)·op(b) (+c when accumulate), for m, n,
// k > 0; see MatMulScaled.
func gemm(c, a, b []float32, m, n, k int, transA, transB bool, alpha float32, accumulate bool) {
	t := gemmTask{c: c[:m*n], a: a[:m*k], b: b[:k*n], m: m, n: n, k: k, transA: transA, transB: transB,
		alpha: alpha, accumulate: accumulate, i1: m, j1: n}
	switch {
	case m*n*k < gemmSmall:
		t.small()
		return
	case n == 1:
		// c is a column, which is laid out as a row: cᵀ = op(b)ᵀ·op(a)ᵀ
		// with op(b)ᵀ a row vector.
		t.a, t.b, t.m, t.n, t.i1, t.j1 = b[:k], a[:m*k], 1, m, 1, m
		t.kind = gemmDots
		if transA {
			t.kind = gemmAxpys
		}
	case m == 1 && !transB:
		t.kind = gemmAxpys
	case transB && (m == 1 || m <= gemmDotRows && !transA):
		t.kind = gemmDots
	}
	work := m * n * k
	if t.m == 1 {
		work *= 8 // one pass over memory costs more than the multiply-adds
	}
	parts := min(runtime.GOMAXPROCS(0), max(1, work/gemmPerWorker))
	if parts == 1 || !gemmPool.TryLock() {
		buf := spareBuffers.Get().(*gemmBuffers)
		t.run(buf)
		spareBuffers.Put(buf)
		return
	}
	defer gemmPool.Unlock()
	for len(gemmPool.helpers) < parts-1 {
		h := &gemmHelper{start: make(chan struct{})}
		gemmPool.helpers = append(gemmPool.helpers, h)
		go h.loop()
	}
	// Split the longer side of c, in whole tiles.
	byRows := t.kind == gemmPacked && m > n
	split, unit := t.n, kern.nr
	if byRows {
		split, unit = m, kern.mr
	}
	chunk := ((split+parts-1)/parts + unit - 1) / unit * unit
	parts = (split + chunk - 1) / chunk
	gemmPool.done.Add(parts - 1)
	for p := 1; p < parts; p++ {
		h := gemmPool.helpers[p-1]
		h.task = t
		h.task.part(byRows, p*chunk, min((p+1)*chunk, split))
		h.start <- struct{}{}
	}
	t.part(byRows, 0, min(chunk, split))
	// The helpers just woken wait in this P's run-next slot, which an idle P
	// takes over only after a delay; yielding runs one of them here at once
	// and puts this goroutine in the global queue, where another P finds it
	// without that delay.
	runtime.Gosched()
	t.run(&gemmPool.main)
	gemmPool.done.Wait()
}

// part narrows t to rows (byRows) or columns [lo,hi) of c.
func (t *gemmTask) part(byRows bool, lo, hi int) {
	if byRows {
		t.i0, t.i1 = lo, hi
	} else {
		t.j0, t.j1 = lo, hi
	}
}

// run computes t using buf for packing.
func (t *gemmTask) run(buf *gemmBuffers) {
	switch t.kind {
	case gemmDots:
		t.dots(&buf.dots)
	case gemmAxpys:
		t.axpys()
	default:
		t.packed(buf)
	}
}

// small computes t with plain loops.
func (t *gemmTask) small() {
	m, n, k := t.m, t.n, t.k
	for i := range m {
		ci := t.c[i*n : (i+1)*n]
		if !t.accumulate {
			clear(ci)
		}
		for p := range k {
			av := t.a[i*k+p]
			if t.transA {
				av = t.a[p*m+i]
			}
			av *= t.alpha
			if t.transB {
				for j := range ci {
					ci[j] += av * t.b[j*k+p]
				}
			} else {
				for j, bv := range t.b[p*n : (p+1)*n] {
					ci[j] += av * bv
				}
			}
		}
	}
}

// dots computes c[i,j] = alpha·(a[i*k:(i+1)*k] · b[j*k:(j+1)*k]) (+c[i,j])
// for all rows i and columns j in [j0,j1): four rows of b at a time, which
// stay in cache while the rows of a pass them, four at a time where the CPU
// has a kernel for it.
func (t *gemmTask) dots(s *[16]float32) {
	k := t.k
	k8, k16 := k&^7, k&^15
	for j := t.j0; j < t.j1; {
		cols, ld := 4, k
		if j+4 > t.j1 {
			// One row of b at a time, read four times over, so that
			// nothing past the end is read.
			cols, ld = 1, 0
		}
		bj := t.b[j*k : (j+cols)*k]
		i := 0
		if kern.dots4x4 != nil && ld != 0 {
			for ; i+4 <= t.m; i += 4 {
				kern.dots4x4(k16, t.a[i*k:(i+4)*k], k, bj, k, s[:])
				if k16 < k {
					for q, sum := range s {
						t.finishDot(i+q/4, j+q%4, sum, k16)
					}
					continue
				}
				for r := range 4 {
					c := t.c[(i+r)*t.n+j : (i+r)*t.n+j+4]
					for q, sum := range s[4*r : 4*r+4] {
						if t.accumulate {
							c[q] += t.alpha * sum
						} else {
							c[q] = t.alpha * sum
						}
					}
				}
			}
		}
		for ; i < t.m; i++ {
			kern.dots4(k8, t.a[i*k:(i+1)*k], bj, ld, s[:4])
			for r, sum := range s[:cols] {
				t.finishDot(i, j+r, sum, k8)
			}
		}
		j += cols
	}
}

// finishDot adds the products past column p0 to sum, the dot product of
// rows i of a and j of b up to p0, and stores the result in c[i,j].
func (t *gemmTask) finishDot(i, j int, sum float32, p0 int) {
	x, row := t.a[i*t.k:(i+1)*t.k], t.b[j*t.k:(j+1)*t.k]
	for p := p0; p < t.k; p++ {
		sum += x[p] * row[p]
	}
	sum *= t.alpha
	if t.accumulate {
		sum += t.c[i*t.n+j]
	}
	t.c[i*t.n+j] = sum
}

// axpys computes c[j0:j1] = alpha·Σ_p x[p]·mat[p*n+j0 : p*n+j1] (+c[j0:j1]),
// in column blocks that stay in L1.
func (t *gemmTask) axpys() {
	const block = 2048
	n := t.n
	for j0 := t.j0; j0 < t.j1; j0 += block {
		j1 := min(j0+block, t.j1)
		c := t.c[j0:j1]
		if !t.accumulate {
			clear(c)
		}
		for p, xv := range t.a[:t.k] {
			kern.axpy(t.alpha*xv, t.b[p*n+j0:p*n+j1], c)
		}
	}
}

// packed computes t's block of c with packed slabs.
func (t *gemmTask) packed(buf *gemmBuffers) {
	mr, nr := kern.mr, kern.nr
	mc, nc := gemmMC/mr*mr, gemmNC/nr*nr
	if len(buf.a) != mc*gemmKC || len(buf.b) != gemmKC*nc || len(buf.tile) != mr*nr {
		buf.a = make([]float32, mc*gemmKC)
		buf.b = make([]float32, gemmKC*nc)
		buf.tile = make([]float32, mr*nr)
	}
	n := t.n
	for jc := t.j0; jc < t.j1; jc += nc {
		nb := min(nc, t.j1-jc)
		for pc := 0; pc < t.k; pc += gemmKC {
			kb := min(gemmKC, t.k-pc)
			t.packB(buf.b, pc, kb, jc, nb)
			load := t.accumulate || pc > 0
			for ic := t.i0; ic < t.i1; ic += mc {
				mb := min(mc, t.i1-ic)
				t.packA(buf.a, ic, mb, pc, kb)
				for jr := 0; jr < nb; jr += nr {
					bp := buf.b[jr*kb : (jr+nr)*kb]
					cols := min(nr, nb-jr)
					for ir := 0; ir < mb; ir += mr {
						ap := buf.a[ir*kb : (ir+mr)*kb]
						rows := min(mr, mb-ir)
						off := (ic+ir)*n + jc + jr
						if rows == mr && cols == nr {
							kern.tile(kb, ap, bp, t.c[off:off+(mr-1)*n+nr], n, t.alpha, load)
							continue
						}
						kern.tile(kb, ap, bp, buf.tile, nr, t.alpha, false)
						for r := range rows {
							dst, src := t.c[off+r*n:off+r*n+cols], buf.tile[r*nr:r*nr+cols]
							if load {
								for j, v := range src {
									dst[j] += v
								}
							} else {
								copy(dst, src)
							}
						}
					}
				}
			}
		}
	}
}

// packA copies rows [i0,i0+mb), columns [p0,p0+kb) of op(a) into dst as
// mr-high strips, each stored column by column and padded with zero rows.
func (t *gemmTask) packA(dst []float32, i0, mb, p0, kb int) {
	mr, m, k := kern.mr, t.m, t.k
	for s := 0; s < mb; s += mr {
		strip := dst[s*kb : (s+mr)*kb]
		rows := min(mr, mb-s)
		if t.transA {
			for p := range kb {
				src := t.a[(p0+p)*m+i0+s : (p0+p)*m+i0+s+rows]
				d := strip[p*mr : (p+1)*mr]
				copy(d, src)
				clear(d[rows:])
			}
			continue
		}
		packTransposed(strip, t.a[(i0+s)*k+p0:], rows, kb, k, mr)
	}
}

// packB copies rows [p0,p0+kb), columns [j0,j0+nb) of op(b) into dst as
// nr-wide strips, each stored row by row and padded with zero columns.
func (t *gemmTask) packB(dst []float32, p0, kb, j0, nb int) {
	nr, n, k := kern.nr, t.n, t.k
	for s := 0; s < nb; s += nr {
		strip := dst[s*kb : (s+nr)*kb]
		cols := min(nr, nb-s)
		if t.transB {
			packTransposed(strip, t.b[(j0+s)*k+p0:], cols, kb, k, nr)
			continue
		}
		for p := range kb {
			src := t.b[(p0+p)*n+j0+s : (p0+p)*n+j0+s+cols]
			d := strip[p*nr : (p+1)*nr]
			copy(d, src)
			clear(d[cols:])
		}
	}
}

// packTransposed sets strip[p*w+r] = src[r*ld+p] for r < rows and p < kb,
// and to zero for rows ≤ r < w: rows of src, kb long and ld apart, become
// columns of a strip w wide.
func packTransposed(strip, src []float32, rows, kb, ld, w int) {
	r := 0
	if kern.transpose8 != nil && rows >= 8 && kb >= 8 {
		// Eight rows at a time; the last eight may overlap the ones before.
		kb8 := kb &^ 7
		for r0 := 0; r0 < rows; r0 += 8 {
			r0 = min(r0, rows-8)
			kern.transpose8(kb8, src[r0*ld:(r0+7)*ld+kb8], ld, strip[r0:(kb8-1)*w+r0+8], w)
		}
		for p := kb8; p < kb; p++ {
			for q := range rows {
				strip[p*w+q] = src[q*ld+p]
			}
		}
		r = rows
	}
	// Four rows at a time, so four streams are read at once and each store
	// fills four neighbouring floats.
	for ; r+4 <= rows; r += 4 {
		r0 := src[r*ld:][:kb]
		r1 := src[(r+1)*ld:][:kb]
		r2 := src[(r+2)*ld:][:kb]
		r3 := src[(r+3)*ld:][:kb]
		for p := range kb {
			d := strip[p*w+r : p*w+r+4 : p*w+r+4]
			d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
		}
	}
	for ; r < rows; r++ {
		for p, v := range src[r*ld:][:kb] {
			strip[p*w+r] = v
		}
	}
	for r := rows; r < w; r++ {
		for p := range kb {
			strip[p*w+r] = 0
		}
	}
}

// gemmKernel4x4 is the portable micro-kernel.
func gemmKernel4x4(k int, a, b, c []float32, ldc int, alpha float32, load bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	a, b = a[:4*k], b[:4*k]
	for p := 0; p < len(a); p += 4 {
		a0, a1, a2, a3 := a[p], a[p+1], a[p+2], a[p+3]
		b0, b1, b2, b3 := b[p], b[p+1], b[p+2], b[p+3]
		c00, c01, c02, c03 = c00+a0*b0, c01+a0*b1, c02+a0*b2, c03+a0*b3
		c10, c11, c12, c13 = c10+a1*b0, c11+a1*b1, c12+a1*b2, c13+a1*b3
		c20, c21, c22, c23 = c20+a2*b0, c21+a2*b1, c22+a2*b2, c23+a2*b3
		c30, c31, c32, c33 = c30+a3*b0, c31+a3*b1, c32+a3*b2, c33+a3*b3
	}
	for r, row := range [4][4]float32{{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}} {
		d := c[r*ldc : r*ldc+4]
		for j, v := range row {
			if load {
				d[j] += alpha * v
			} else {
				d[j] = alpha * v
			}
		}
	}
}

// dots4Go sets s[r] = x[:k] · m[r*ld : r*ld+k] for r < 4, the four sums
// taken side by side.
func dots4Go(k int, x, m []float32, ld int, s []float32) {
	x = x[:k]
	r0, r1, r2, r3 := m[:k], m[ld:ld+k], m[2*ld:2*ld+k], m[3*ld:3*ld+k]
	var s0, s1, s2, s3 float32
	for p, v := range x {
		s0 += v * r0[p]
		s1 += v * r1[p]
		s2 += v * r2[p]
		s3 += v * r3[p]
	}
	s[0], s[1], s[2], s[3] = s0, s1, s2, s3
}

// axpyGo adds alpha·x to y.
func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}
