package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/kernels"
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
	for b.Loop() {
		cb, _ := d.NewCommandBuffer()
		e := cb.Encoder()
		lg := kernels.Whole(logits)
		if err := l.CrossEntropy(e, lg, kernels.Whole(losses), lg, kernels.Whole(labels), rows, cols, 1.0/rows); err != nil {
			b.Fatal(err)
		}
		e.End()
		cb.Commit()
		if err := cb.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	roofline(b, 0, 2*4*rows*cols) // reads the logits, writes the gradient
}
