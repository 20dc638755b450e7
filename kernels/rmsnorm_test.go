package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

func BenchmarkRMSNorm128x4096(b *testing.B) {
	const rows, cols = 128, 4096
	bench(b, []int{4 * rows * cols, 4 * rows * cols, 2 * cols}, 8*rows*cols, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.RMSNorm(e, x[0], x[1], x[2], hf.BF16, rows, cols, 1e-6)
	})
}

func BenchmarkRMSNormBackward128x3584(b *testing.B) {
	const rows, cols = 128, 3584
	bench(b, []int{4 * rows * cols, 4 * rows * cols, 4 * rows * cols, 2 * cols}, 12*rows*cols, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.RMSNormBackward(e, x[0], x[1], x[2], x[3], hf.BF16, rows, cols, 1e-6)
	})
}
