package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// BenchmarkAdamW2M measures one AdamW step over 2M parameters (a rank-16
// LoRA adapter of a 1.5B model is about this size).
func BenchmarkAdamW2M(b *testing.B) {
	d, l := library(b)
	const n = 2 << 20
	var bufs [5]kernels.Buf
	for i, size := range []int{4 * n, 4 * n, 4 * n, 4 * n, 4} {
		buf, err := d.NewBuffer(size)
		if err != nil {
			b.Fatal(err)
		}
		defer buf.Release()
		bufs[i] = kernels.Whole(buf)
	}
	h := nn.AdamWParams{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: 1, MaxGradNorm: 1}
	b.SetBytes(4 * 4 * n)
	runBench(b, d, func(e *metal.Encoder) error {
		return l.AdamW(e, bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], n, h)
	})
	roofline(b, 0, 7*4*n) // reads param, grad, m, v; writes param, m, v
}
