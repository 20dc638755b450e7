package check

import (
	"fmt"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// adamWCases checks AdamW over several steps, with gradients that clipping
// scales down and with gradients under the threshold.
func adamWCases() []Case {
	var cs []Case
	for _, s := range []struct {
		n       int
		maxNorm float64
	}{{1, 1e-3}, {1, 10}, {1000, 1}, {1000, 1e6}, {4097, 0.5}, {1<<20 + 3, 1}, {1<<20 + 3, 1e6}} {
		cs = append(cs, adamWCase(s.n, 3, s.maxNorm))
	}
	return cs
}

// adamWCase runs steps AdamW steps on n parameters, each step with its own
// gradients, all encoded on one command buffer.
func adamWCase(n, steps int, maxNorm float64) Case {
	seed := uint64(n*7 + steps)
	return Case{
		File:   "adamw.metal",
		Kernel: "adamw F32",
		Shape:  fmt.Sprintf("n=%d steps=%d maxnorm=%g", n, steps, maxNorm),
		// Per step each of param, m and v goes through at most 7 float32
		// roundings, which a GPU may fuse into multiply-adds (one rounding
		// fewer, a different result by up to an ulp each); errors carried
		// from earlier steps are scaled by factors of at most 1. Relative to
		// max(1, |value|): 16·2^-24 per step covers it.
		Tol: float64(16*steps) * 0x1p-24,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			param := random(n, seed)
			m := random(n, seed+1)
			v := random(n, seed+2)
			for i := range m {
				m[i] *= 0.01
				v[i] = v[i] * v[i] * 1e-4
			}
			grads := random(steps*n, seed+3)
			sumSq := make([]float32, steps)
			h := nn.AdamWParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: maxNorm}
			want := [][]float32{append([]float32(nil), param...), append([]float32(nil), m...), append([]float32(nil), v...)}
			for s := range steps {
				g := grads[s*n : (s+1)*n]
				sumSq[s] = cpu.SumSquares(g)
				h.Step = s + 1
				cpu.AdamW(want[0], g, want[1], want[2], h, nn.ClipFactor(sumSq[s], float32(maxNorm)))
			}
			ins := [][]byte{f32bytes(param), f32bytes(grads), f32bytes(m), f32bytes(v), f32bytes(sumSq)}
			outs, t, err := launch(dev, ins, func(e *metal.Encoder, b []*metal.Buffer) error {
				for s := range steps {
					h.Step = s + 1
					g := kernels.Buf{Buffer: b[1], Off: 4 * s * n}
					ss := kernels.Buf{Buffer: b[4], Off: 4 * s}
					if err := lib.AdamW(e, kernels.Whole(b[0]), g, kernels.Whole(b[2]), kernels.Whole(b[3]), ss, n, h); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return nil, nil, t, err
			}
			got := append(append(f32s(outs[0]), f32s(outs[2])...), f32s(outs[3])...)
			return got, append(append(want[0], want[1]...), want[2]...), t, nil
		},
	}
}
