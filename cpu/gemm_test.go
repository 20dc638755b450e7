package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refMatMul is the plain definition of MatMulScaled, accumulated in float64.
// It also returns, for every element of c, Σ|op(a)|·|op(b)|·|alpha|, the scale
// of the rounding error a float32 product may make.
func refMatMul(c, a, b []float32, m, n, k int, transA, transB bool, alpha float32, accumulate bool) (want, scale []float64) {
	want, scale = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s, abs float64
			for p := range k {
				av := a[i*k+p]
				if transA {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if transB {
					bv = b[j*k+p]
				}
				s += float64(av) * float64(bv)
				abs += math.Abs(float64(av) * float64(bv))
			}
			s *= float64(alpha)
			abs *= math.Abs(float64(alpha))
			if accumulate {
				s += float64(c[i*n+j])
				abs += math.Abs(float64(c[i*n+j]))
			}
			want[i*n+j], scale[i*n+j] = s, abs
		}
	}
	return want, scale
}

func randFloats(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// testKernels are the kernels this machine can run; gemm_amd64_test.go adds
// the assembly ones.
var testKernels = []testKernel{{"go", gemmGo}}

type testKernel struct {
	name string
	k    gemmKernels
}

func TestMatMulScaled(t *testing.T) {
	for _, tk := range testKernels {
		t.Run(tk.name, func(t *testing.T) {
			saved := kern
			kern = tk.k
			defer func() { kern = saved }()
			testMatMulScaled(t)
		})
	}
}

func testMatMulScaled(t *testing.T) {
	sizes := []int{1, 7, 15, 16, 17, 63, 64, 65, 129}
	type shape struct{ m, n, k int }
	var shapes []shape
	for _, m := range sizes {
		for _, n := range sizes {
			shapes = append(shapes, shape{m, n, sizes[(m+n)%len(sizes)]})
		}
	}
	shapes = append(shapes,
		shape{1000, 33, 17}, shape{3, 1000, 65}, shape{17, 29, 1000}, shape{1, 1000, 1000}, shape{1000, 1, 300},
		shape{200, 300, 700}, shape{3, 4500, 9}, shape{20, 20, 5000}, shape{5000, 3, 80}, shape{129, 1000, 257}, shape{33, 5, 0}, shape{0, 5, 3},
	)
	r := rand.New(rand.NewPCG(1, 2))
	for si, s := range shapes {
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				for _, accumulate := range []bool{false, true} {
					// alpha ≠ 1 with and without accumulate, on alternate shapes.
					alpha := float32(1)
					if accumulate == (si%2 == 0) {
						alpha = -0.37
					}
					name := fmt.Sprintf("%dx%dx%d/ta=%v/tb=%v/alpha=%v/acc=%v", s.m, s.n, s.k, transA, transB, alpha, accumulate)
					a, b := randFloats(r, s.m*s.k), randFloats(r, s.k*s.n)
					c := randFloats(r, s.m*s.n+1) // one guard element past the end
					if !accumulate {
						// c must be overwritten, never read.
						for i := range s.m * s.n {
							c[i] = float32(math.NaN())
						}
					}
					guard := c[s.m*s.n]
					want, scale := refMatMul(c, a, b, s.m, s.n, s.k, transA, transB, alpha, accumulate)
					MatMulScaled(c, a, b, s.m, s.n, s.k, transA, transB, alpha, accumulate)
					if c[s.m*s.n] != guard {
						t.Fatalf("%s: wrote past the end of c", name)
					}
					// Each of the k products and k additions in float32 rounds
					// by at most 2⁻²⁴ relative, so the error is bounded by about
					// (k+2)·2⁻²⁴·Σ|a·b| (plus the alpha and accumulate steps);
					// twice that leaves room for any summation order.
					tol := 2 * float64(s.k+2) * 0x1p-24
					for i, w := range want {
						if d := math.Abs(float64(c[i]) - w); d > tol*scale[i] || math.IsNaN(d) {
							t.Fatalf("%s: c[%d,%d] = %v, want %v (error %g > %g)", name, i/s.n, i%s.n, c[i], w, d, tol*scale[i])
						}
					}
				}
			}
		}
	}
}

// TestMatMulScaledConcurrent runs products from several goroutines at once,
// the way independent models share the CPU backend.
func TestMatMulScaledConcurrent(t *testing.T) {
	const m, n, k = 70, 300, 200
	r := rand.New(rand.NewPCG(3, 4))
	a, b := randFloats(r, m*k), randFloats(r, n*k)
	want := make([]float32, m*n)
	MatMulScaled(want, a, b, m, n, k, false, true, 1, false)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			c := make([]float32, m*n)
			for range 20 {
				MatMulScaled(c, a, b, m, n, k, false, true, 1, false)
				for i := range c {
					if c[i] != want[i] {
						errs <- fmt.Errorf("goroutine %d: c[%d] = %v, want %v", g, i, c[i], want[i])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkMatMul times the product shapes the model uses most: a linear
// layer over 256 tokens, one decode row through a 4096² layer, 16 decode
// rows through a 32k-word output layer, a backward
// product without transposes and a LoRA weight gradient.
func BenchmarkMatMul(b *testing.B) {
	for _, s := range []struct {
		m, n, k        int
		transA, transB bool
	}{
		{256, 1408, 512, false, true},
		{1, 4096, 4096, false, true},
		{16, 32000, 512, false, true},
		{512, 512, 4096, false, false},
		{32, 4096, 256, true, false},
	} {
		name := fmt.Sprintf("%dx%dx%d", s.m, s.n, s.k)
		if s.transA {
			name += "/transA"
		}
		if s.transB {
			name += "/transB"
		}
		b.Run(name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(5, 6))
			x, y, c := randFloats(r, s.m*s.k), randFloats(r, s.k*s.n), make([]float32, s.m*s.n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				MatMulScaled(c, x, y, s.m, s.n, s.k, s.transA, s.transB, 1, false)
			}
			b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
