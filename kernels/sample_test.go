package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// benchSample measures sampling 16 rows over a Qwen2-sized vocabulary
// (all-zero logits: every token ties, the search runs its full length).
func benchSample(b *testing.B, temperature, topP float32) {
	d, l := library(b)
	const rows, cols = 16, 151936
	logits, _ := d.NewBuffer(4 * rows * cols)
	u, _ := d.NewBuffer(4 * rows)
	ids, _ := d.NewBuffer(4 * rows)
	defer logits.Release()
	defer u.Release()
	defer ids.Release()
	b.SetBytes(4 * rows * cols)
	runBench(b, d, func(e *metal.Encoder) error {
		return l.Sample(e, kernels.Whole(ids), kernels.Whole(logits), kernels.Whole(u), rows, cols, temperature, topP)
	})
	roofline(b, 0, 4*rows*cols)
}

func BenchmarkSampleGreedy16x151936(b *testing.B) { benchSample(b, 0, 1) }
func BenchmarkSampleTopP16x151936(b *testing.B)   { benchSample(b, 0.7, 0.9) }
func BenchmarkSampleAll16x151936(b *testing.B)    { benchSample(b, 0.7, 1) }
