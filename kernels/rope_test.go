package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// BenchmarkRoPE128x3584 rotates the queries of 128 tokens of Qwen2-7B
// (28 heads of 128).
func BenchmarkRoPE128x3584(b *testing.B) {
	const rows, cols, headDim, positions = 128, 3584, 128, 4096
	bench(b, []int{4 * rows * cols, 4 * positions * headDim, 4 * rows}, 8*rows*cols, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.RoPE(e, x[0], x[1], x[2], rows, cols, headDim, positions, false)
	})
}
