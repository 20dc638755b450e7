package check

import (
	"fmt"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// rmsnormCases covers RMSNorm and RMSNormBackward.
func rmsnormCases() []Case {
	var cs []Case
	norms := map[hf.DType][][2]int{
		hf.F32:  {{1, 1}, {7, 7}, {3, 64}, {5, 65}, {2, 4096}, {4, 1000}},
		hf.F16:  {{3, 64}, {5, 65}, {2, 4096}},
		hf.BF16: {{1, 1}, {3, 64}, {5, 65}, {2, 4096}},
	}
	for _, dt := range []hf.DType{hf.F32, hf.F16, hf.BF16} {
		for _, s := range norms[dt] {
			cs = append(cs, rmsnormCase(dt, s[0], s[1]))
		}
	}
	backs := map[hf.DType][]struct {
		rows, cols, off int
		alias           bool
	}{
		hf.F32:  {{1, 1, 0, false}, {7, 7, 4, false}, {3, 64, 0, false}, {5, 65, 16, true}, {2, 896, 0, false}, {2, 3584, 0, false}, {4, 1000, 4, true}},
		hf.F16:  {{3, 64, 0, false}, {5, 65, 4, false}, {2, 896, 16, false}},
		hf.BF16: {{1, 1, 0, false}, {3, 64, 16, false}, {5, 65, 0, false}, {1, 896, 4, false}, {2, 3584, 0, true}, {2, 4096, 0, false}},
	}
	for _, dt := range []hf.DType{hf.F32, hf.F16, hf.BF16} {
		for _, s := range backs[dt] {
			cs = append(cs, rmsnormBackwardCase(dt, s.rows, s.cols, s.off, s.alias))
		}
	}
	return cs
}

func rmsnormCase(dt hf.DType, rows, cols int) Case {
	const eps = 1e-6
	seed := uint64(rows*7919 + cols)
	return Case{
		File:   "rmsnorm.metal",
		Kernel: "rmsnorm " + dt.String(),
		Shape:  fmt.Sprintf("rows=%d cols=%d", rows, cols),
		// The mean square sums cols squares in a different order on each
		// side: at most cols roundings of 2^-24 relative each; the output
		// inherits half of that relative error plus a few roundings.
		Tol: float64(cols+16) * 0x1p-24,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			x := random(rows*cols, seed)
			wb, wref := weights(random(cols, seed+1), dt)
			want := make([]float32, rows*cols)
			cpu.RMSNorm(want, x, wref, rows, cols, eps)
			outs, t, err := launch(dev, [][]byte{make([]byte, 4*rows*cols), f32bytes(x), wb}, func(e *metal.Encoder, b []*metal.Buffer) error {
				return lib.RMSNorm(e, kernels.Whole(b[0]), kernels.Whole(b[1]), kernels.Whole(b[2]), dt, rows, cols, eps)
			})
			if err != nil {
				return nil, nil, t, err
			}
			return f32s(outs[0]), want, t, nil
		},
	}
}

// rmsnormBackwardCase checks RMSNormBackward; with alias, dx is dy.
func rmsnormBackwardCase(dt hf.DType, rows, cols, off int, alias bool) Case {
	const eps = 1e-6
	seed := uint64(rows*7919 + cols + off)
	kernel := "rmsnorm_backward " + dt.String()
	if alias {
		kernel += " dx=dy"
	}
	return Case{
		File:   "rmsnorm.metal",
		Kernel: kernel,
		Shape:  fmt.Sprintf("rows=%d cols=%d off=%d", rows, cols, off),
		// x has magnitudes in [0.5, 1), so inv = 1/rms(x) ≤ 2; w and dy
		// are in [-1, 1). Σx² and Σx·w·dy are summed in different orders
		// on each side: each within cols·2⁻²⁴ of the sum of magnitudes.
		// inv then errs by cols·2⁻²⁵ relative, moving inv·w·dy by at most
		// cols·2⁻²⁴; c = inv³·mean(x·w·dy) errs by inv³·cols·2⁻²⁴·mean|x·w·dy|
		// ≤ 8·cols·2⁻²⁴·mean|x·w·dy|, and mean|x·w·dy| is about 1/4 for
		// these inputs: x·c moves by about 2·cols·2⁻²⁴. With a few
		// roundings more: under 4·(cols+16)·2⁻²⁴.
		Tol: 4 * float64(cols+16) * 0x1p-24,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			x := nonzero(rows*cols, seed)
			wb, w := weights(random(cols, seed+1), dt)
			dy := random(rows*cols, seed+2)
			dx := random(rows*cols, seed+3)
			if alias {
				copy(dx, dy)
			}
			outs, t, err := launch(dev, [][]byte{pad(f32bytes(dx), off), pad(f32bytes(dy), off), pad(f32bytes(x), off), pad(wb, off)}, func(e *metal.Encoder, b []*metal.Buffer) error {
				dyb := at(b[1], off)
				if alias {
					dyb = at(b[0], off)
				}
				return lib.RMSNormBackward(e, at(b[0], off), dyb, at(b[2], off), at(b[3], off), dt, rows, cols, eps)
			})
			if err != nil {
				return nil, nil, t, err
			}
			cpu.RMSNormBackward(dx, dy, x, w, rows, cols, eps)
			return f32s(outs[0]), f32s(pad(f32bytes(dx), off)), t, nil
		},
	}
}
