package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// BenchmarkEmbed128x3584BF16 gathers 128 rows of a 4096-row bf16 table
// (the ids are zero: the same row, which the benchmark does not mind).
func BenchmarkEmbed128x3584BF16(b *testing.B) {
	const rows, cols, tableRows = 128, 3584, 4096
	bench(b, []int{4 * rows * cols, 2 * tableRows * cols, 4 * rows}, 6*rows*cols, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.Embed(e, x[0], x[1], hf.BF16, x[2], rows, cols, tableRows)
	})
}

// BenchmarkSetRows128x512 writes 128 rows of Qwen2-7B's keys (4 heads of
// 128) into a 4096-row cache.
func BenchmarkSetRows128x512(b *testing.B) {
	const n, cols, dstRows = 128, 512, 4096
	bench(b, []int{4 * dstRows * cols, 4 * n * cols, 4 * n}, 8*n*cols, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.SetRows(e, x[0], x[1], x[2], n, cols, dstRows)
	})
}
