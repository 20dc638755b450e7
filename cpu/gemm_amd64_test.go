package cpu

import "testing"

func init() {
	if gemmAVX2 != nil {
		testKernels = append(testKernels, testKernel{"avx2", *gemmAVX2})
	}
	if gemmAVX512 != nil {
		testKernels = append(testKernels, testKernel{"avx512", *gemmAVX512})
	}
}

// TestGemmKernelsDetected makes sure the assembly kernels are in use where
// the CPU has AVX2 and FMA, so a broken feature check cannot go unnoticed.
func TestGemmKernelsDetected(t *testing.T) {
	if gemmAVX2 != nil && kern.mr == gemmGo.mr && kern.nr == gemmGo.nr {
		t.Errorf("CPU has AVX2 and FMA but MatMul uses the portable %d×%d kernel", kern.mr, kern.nr)
	}
}
