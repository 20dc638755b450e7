package check

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// reduceCases checks Sum and SumSquares on sizes around the kernels'
// threadgroup stretches, at 16-byte aligned and unaligned starts, on random
// values and on small integers (whose sums are exact in float32 in any
// order, so every element must be counted exactly once: tolerance 0).
func reduceCases() []Case {
	var cs []Case
	for _, n := range []int{1, 31, 1000, 4097, 1 << 20, 1<<20 + 3} {
		for _, sq := range []bool{false, true} {
			cs = append(cs, reduceCase(n, 0, sq, false, false))
			cs = append(cs, reduceCase(n, 0, sq, false, true))
		}
	}
	cs = append(cs,
		reduceCase(1000, 0, false, true, false),
		reduceCase(1<<20+3, 0, false, true, true),
		reduceCase(1000, 1, false, false, false),
		reduceCase(4097, 3, true, false, true),
	)
	return cs
}

// reduceCase sums (or sums the squares of) n values placed off elements
// into their buffer, adding to a non-zero dst when accumulate is set.
func reduceCase(n, off int, square, accumulate, exact bool) Case {
	name := "sum"
	if square {
		name = "sumsquares"
	}
	shape := fmt.Sprintf("n=%d", n)
	if off > 0 {
		shape += fmt.Sprintf(" off=%d", off)
	}
	if accumulate {
		shape += " accumulate"
	}
	seed := uint64(n)*31 + uint64(off)
	x := random(n, seed)
	if exact {
		shape += " integers"
		// |x| ≤ 8, or x² ≤ 9: every partial sum of up to 1<<20+3 terms
		// stays below 2^24 in magnitude, so it is an exact float32.
		r := rand.New(rand.NewPCG(seed, 1))
		for i := range x {
			if square {
				x[i] = float32(r.IntN(7) - 3)
			} else {
				x[i] = float32(r.IntN(17) - 8)
			}
		}
	}
	d0 := float32(0)
	if accumulate {
		d0 = 0.75
	}
	var want, abs float64
	for _, v := range x {
		if square {
			want += float64(v) * float64(v)
			abs += float64(v) * float64(v)
		} else {
			want += float64(v)
			abs += math.Abs(float64(v))
		}
	}
	want32 := cpu.Sum(x)
	if square {
		want32 = cpu.SumSquares(x)
	}
	want32 += d0
	tol := 0.0
	if !exact {
		// Each term reaches the total through at most n/2^20 + 40 float32
		// additions (a thread's quads, the four lanes, the SIMD-group tree,
		// stage 1's partials, stage 2's), each rounding by at most 2^-24 of
		// a partial sum bounded by Σ|terms|; squares and the reference's
		// final rounding add two more. The error is measured relative to
		// max(1, |Σ|).
		tol = (float64(n)/(1<<20) + 43) * 0x1p-24 * (abs + math.Abs(float64(d0))) / math.Max(1, math.Abs(want+float64(d0)))
	}
	return Case{
		File:   "reduce.metal",
		Kernel: name + " F32",
		Shape:  shape,
		Tol:    tol,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			in := f32bytes(append(make([]float32, off), x...))
			outs, t, err := launch(dev, [][]byte{f32bytes([]float32{d0}), in, make([]byte, kernels.ReduceScratchSize(n))},
				func(e *metal.Encoder, b []*metal.Buffer) error {
					xb := kernels.Buf{Buffer: b[1], Off: 4 * off}
					if square {
						return lib.SumSquares(e, kernels.Whole(b[0]), xb, kernels.Whole(b[2]), n)
					}
					return lib.Sum(e, kernels.Whole(b[0]), xb, kernels.Whole(b[2]), n, accumulate)
				})
			if err != nil {
				return nil, nil, t, err
			}
			return f32s(outs[0]), []float32{want32}, t, nil
		},
	}
}
