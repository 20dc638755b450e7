package nn

import (
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// This file holds the CPU backend's ops as plain functions over float32
// slices. They are also the references every Metal kernel is tested against.

var blas32 gonum.Implementation

// MatMul computes c = op(a)·op(b), or c += op(a)·op(b) when accumulate is set.
// c is m×n; op(a) is m×k (a is k×m when transA); op(b) is k×n (b is n×k when
// transB). All matrices are dense and row-major. A linear layer y = x·Wᵀ with
// W stored [out, in] is MatMul(y, x, W, rows, out, in, false, true, false).
func MatMul(c, a, b []float32, m, n, k int, transA, transB, accumulate bool) {
	if m == 0 || n == 0 {
		return
	}
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	if k == 0 {
		if !accumulate {
			clear(c[:m*n])
		}
		return
	}
	ta, lda := blas.NoTrans, k
	if transA {
		ta, lda = blas.Trans, m
	}
	tb, ldb := blas.NoTrans, n
	if transB {
		tb, ldb = blas.Trans, k
	}
	blas32.Sgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, beta, c, n)
}

// RMSNorm sets out[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) * weight for
// each of rows rows of cols values, accumulating the mean square in float32
// as transformers' Qwen2RMSNorm and LlamaRMSNorm do.
func RMSNorm(out, x, weight []float32, rows, cols int, eps float32) {
	parallelRows(rows, cols, func(r int) {
		xr := x[r*cols : (r+1)*cols]
		or := out[r*cols : (r+1)*cols]
		inv := rmsInv(xr, eps)
		for i, v := range xr {
			or[i] = weight[i] * (v * inv)
		}
	})
}

// rmsInv returns 1/sqrt(mean(x²)+eps).
func rmsInv(x []float32, eps float32) float32 {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	return float32(1 / math.Sqrt(float64(ss/float32(len(x))+eps)))
}

// parallelRows calls f for every row in [0, rows), spreading rows over the
// machine's cores when the work (rows*cost) is large enough to pay for it.
func parallelRows(rows, cost int, f func(r int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > rows {
		workers = rows
	}
	if workers <= 1 || rows*cost < 1<<15 {
		for r := 0; r < rows; r++ {
			f(r)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (rows + workers - 1) / workers
	for lo := 0; lo < rows; lo += chunk {
		hi := min(lo+chunk, rows)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			for r := lo; r < hi; r++ {
				f(r)
			}
		}(lo, hi)
	}
	wg.Wait()
}
