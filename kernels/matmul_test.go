package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// benchMatMul measures one c = alpha·op(a)·op(b) (+ c) (commit to
// completion), with a split-K scratch buffer sized by kernels.MatMulScratch.
func benchMatMul(b *testing.B, dt hf.DType, m, n, k int, transA, transB bool) {
	d, l := library(b)
	bufs := make([]*metal.Buffer, 4)
	for i, size := range []int{4 * m * n, 4 * m * k, dt.Size() * k * n, kernels.MatMulScratch(m, n, k)} {
		buf, err := d.NewBuffer(size)
		if err != nil {
			b.Fatal(err)
		}
		defer buf.Release()
		bufs[i] = buf
	}
	scratch := kernels.Whole(bufs[3])
	b.ResetTimer()
	runBench(b, d, func(e *metal.Encoder) error {
		return l.MatMul(e, kernels.Whole(bufs[0]), kernels.Whole(bufs[1]), kernels.Whole(bufs[2]), dt, m, n, k, transA, transB, 1, false, scratch)
	})
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	roofline(b, 2*float64(m)*float64(n)*float64(k), float64(4*m*n+4*m*k+dt.Size()*k*n))
}

// Square products, and a 512×4096×4096 bf16 layer scaled down to 256×1024².
func BenchmarkMatMul256F32(b *testing.B)  { benchMatMul(b, hf.F32, 256, 256, 256, false, false) }
func BenchmarkMatMul256BF16(b *testing.B) { benchMatMul(b, hf.BF16, 256, 256, 256, false, true) }
func BenchmarkMatMulLayerBF16(b *testing.B) {
	benchMatMul(b, hf.BF16, 256, 1024, 1024, false, true)
}
func BenchmarkMatMulLayerBackBF16(b *testing.B) {
	benchMatMul(b, hf.BF16, 256, 1024, 1024, false, false)
}

// Decoding: one row and a few rows through a 4096-wide layer.
func BenchmarkMatVec4096BF16(b *testing.B) { benchMatMul(b, hf.BF16, 1, 4096, 4096, false, true) }
func BenchmarkMatVec4096NF16(b *testing.B) { benchMatMul(b, hf.F16, 1, 4096, 4096, false, false) }
func BenchmarkMatRows8x4096BF16(b *testing.B) {
	benchMatMul(b, hf.BF16, 8, 1024, 4096, false, true)
}

// LoRA's thin products, rank 16, 1024 wide, 4096 tokens (k long for dA, dB).
func BenchmarkLoRAxAt(b *testing.B) { benchMatMul(b, hf.F32, 4096, 16, 1024, false, true) }
func BenchmarkLoRAdA(b *testing.B)  { benchMatMul(b, hf.F32, 16, 1024, 4096, true, false) }
func BenchmarkLoRAdB(b *testing.B)  { benchMatMul(b, hf.F32, 1024, 16, 4096, true, false) }

// The LM head over a 64-token chunk, 896 hidden, a vocabulary cut to 16384,
// and its backward product dx = dlogits·W (k the vocabulary).
func BenchmarkLMHeadBF16(b *testing.B) { benchMatMul(b, hf.BF16, 64, 16384, 896, false, true) }
func BenchmarkLMHeadBackBF16(b *testing.B) {
	benchMatMul(b, hf.BF16, 64, 896, 16384, false, false)
}
