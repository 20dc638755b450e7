package check

import (
	"fmt"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// ropeTables are the rotary tables of the cases: plain tables at the
// rope_theta of Qwen2 and of older Llamas, and Llama-3.1's frequency
// scaling. The table is data to the kernel; its source only changes the
// angles.
var ropeTables = map[string]hf.Config{
	"qwen2":    {RopeTheta: 1e6},
	"theta1e4": {RopeTheta: 1e4},
	"llama3":   {RopeTheta: 5e5, RopeScaling: &hf.RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}},
}

// ropePositions is the table length of the cases.
const ropePositions = 2048

func ropeCases() []Case {
	var cs []Case
	for _, s := range []struct {
		table               string
		rows, cols, headDim int
		off                 int
		inverse, bad        bool
	}{
		{"qwen2", 1, 896, 64, 0, false, false},
		{"qwen2", 3, 3584, 128, 0, true, false},
		{"llama3", 5, 256, 128, 16, false, false},
		{"llama3", 4, 4096, 128, 0, true, true},
		{"llama3", 7, 128, 64, 4, true, false},
		{"theta1e4", 6, 96, 32, 16, false, true},
		{"theta1e4", 3, 64, 32, 4, false, false},
		{"theta1e4", 5, 18, 6, 0, false, true},
		{"theta1e4", 1, 2, 2, 0, true, false},
	} {
		cs = append(cs, ropeCase(s.table, s.rows, s.cols, s.headDim, s.off, s.inverse, s.bad))
	}
	return cs
}

func ropeCase(name string, rows, cols, headDim, off int, inverse, bad bool) Case {
	seed := uint64(rows*7919 + cols*31 + headDim + off)
	kernel := "rope " + name
	if inverse {
		kernel += " inverse"
	}
	shape := fmt.Sprintf("rows=%d cols=%d headDim=%d off=%d", rows, cols, headDim, off)
	if bad {
		shape += " bad positions"
	}
	return Case{
		File:   "rope.metal",
		Kernel: kernel,
		Shape:  shape,
		// Both sides compute a·cos − b·sin and b·cos + a·sin in the same
		// order, identical unless the device fuses a product into the
		// subtraction or addition: that changes one rounding of a product
		// below 1 in magnitude, 2⁻²⁴, and so the result by at most one
		// ulp of 1 or 2. Allowed: 2⁻²².
		Tol: 0x1p-22,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			cfg := ropeTables[name]
			cfg.HeadDim = headDim
			table := nn.RopeTable(cfg.InvFreq(), ropePositions)
			pos := rowNumbers(rows, ropePositions, seed, bad)
			x := random(rows*cols, seed+1)
			outs, t, err := launch(dev, [][]byte{pad(f32bytes(x), off), pad(f32bytes(table), off), pad(i32bytes(pos), off)}, func(e *metal.Encoder, b []*metal.Buffer) error {
				return lib.RoPE(e, at(b[0], off), at(b[1], off), at(b[2], off), rows, cols, headDim, ropePositions, inverse)
			})
			if err != nil {
				return nil, nil, t, err
			}
			// cpu.RoPE row by row; a row at a position outside the table
			// stays as it is.
			for r, p := range pos {
				if p >= 0 && p < ropePositions {
					cpu.RoPE(x[r*cols:(r+1)*cols], table, pos[r:r+1], 1, cols, headDim, inverse)
				}
			}
			return f32s(outs[0]), f32s(pad(f32bytes(x), off)), t, nil
		},
	}
}
