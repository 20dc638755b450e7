package cpu

import "golang.org/x/sys/cpu"

// The assembly micro-kernels and vector helpers of gemm_amd64.s.

//go:noescape
func gemmKernel6x16(k int, a, b, c []float32, ldc int, alpha float32, load bool)

//go:noescape
func gemmKernel14x32(k int, a, b, c []float32, ldc int, alpha float32, load bool)

//go:noescape
func dots4AVX2(k int, x, m []float32, ld int, s []float32)

//go:noescape
func axpyAVX2(alpha float32, x, y []float32)

//go:noescape
func dots4x4AVX512(k int, a []float32, lda int, b []float32, ldb int, s []float32)

//go:noescape
func transpose8AVX2(kb int, src []float32, ld int, dst []float32, ldd int)

// gemmAVX2 and gemmAVX512 are the assembly kernels, nil where the CPU lacks
// the instructions.
var gemmAVX2, gemmAVX512 *gemmKernels

func init() {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return
	}
	gemmAVX2 = &gemmKernels{mr: 6, nr: 16, tile: gemmKernel6x16, dots4: dots4AVX2, axpy: axpyAVX2, transpose8: transpose8AVX2}
	kern = *gemmAVX2
	if cpu.X86.HasAVX512F {
		k := *gemmAVX2
		k.mr, k.nr, k.tile, k.dots4x4 = 14, 32, gemmKernel14x32, dots4x4AVX512
		gemmAVX512 = &k
		kern = k
	}
}
