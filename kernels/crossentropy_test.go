package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// BenchmarkCrossEntropy16x151936 measures the loss and gradient of 16 rows
// over a Qwen2-sized vocabulary, the gradient written over the logits.
func BenchmarkCrossEntropy16x151936(b *testing.B) {
	d, l := library(b)
	const rows, cols = 16, 151936
	logits, _ := d.NewBuffer(4 * rows * cols)
	losses, _ := d.NewBuffer(4 * rows)
	labels, _ := d.NewBuffer(4 * rows)
	defer logits.Release()
	defer losses.Release()
	defer labels.Release()
	b.SetBytes(4 * rows * cols)
	runBench(b, d, func(e *metal.Encoder) error {
		lg := kernels.Whole(logits)
		return l.CrossEntropy(e, lg, kernels.Whole(losses), lg, kernels.Whole(labels), rows, cols, 1.0/rows)
	})
	roofline(b, 0, 2*4*rows*cols) // reads the logits, writes the gradient
}
