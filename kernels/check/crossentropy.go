package check

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// ignore is a label that marks a row left out of the loss.
const ignore = -100

// crossEntropyCases checks CrossEntropy on a full vocabulary, ragged
// widths, rows that are all ignored, logits overwritten by their gradient,
// and rows starting off 16-byte alignment.
func crossEntropyCases() []Case {
	type ce struct {
		rows, cols  int
		off         int // elements before the logits in their buffer
		ignored     int // every ignored-th row has label −100 (0: none)
		alias       bool
		scale       float32
		description string
	}
	var cs []Case
	for _, s := range []ce{
		{1, 1, 0, 0, false, 1, ""},
		{5, 7, 0, 2, false, 0.2, ""},
		{7, 33, 0, 3, false, 1, ""},
		{3, 130, 0, 0, true, 0.5, ""},
		{4, 1000, 0, 0, false, 0.25, ""},
		{4, 1000, 1, 2, true, 0.25, ""},
		{2, 4097, 0, 0, false, 1, ""},
		{4, 100, 0, 1, false, 1, "all ignored"},
		{3, 151936, 0, 2, false, 1.0 / 3, ""},
		{2, 151936, 0, 0, true, 0.5, ""},
	} {
		cs = append(cs, crossEntropyCase(s.rows, s.cols, s.off, s.ignored, s.alias, s.scale, s.description))
	}
	return cs
}

func crossEntropyCase(rows, cols, off, ignored int, alias bool, scale float32, description string) Case {
	shape := fmt.Sprintf("rows=%d cols=%d scale=%.3g", rows, cols, scale)
	if off > 0 {
		shape += fmt.Sprintf(" off=%d", off)
	}
	if alias {
		shape += " in place"
	}
	if ignored > 0 {
		shape += fmt.Sprintf(" ignore every %d", ignored)
	}
	if description != "" {
		shape += " (" + description + ")"
	}
	seed := uint64(rows*100_003 + cols + off)
	return Case{
		File:   "crossentropy.metal",
		Kernel: "crossentropy F32",
		Shape:  shape,
		// The row's Σexp is added in float32: a term passes through at
		// most cols/512 + 45 additions and rescalings (a thread's logits,
		// the SIMD-group tree, the SIMD groups' partials), each exponential
		// is within 4 ulps: relative error (cols/512 + 50)·2^-24 in the
		// sum, hence in the loss (in absolute terms) and in every gradient
		// element (relative to scale, which is the error measure's unit
		// here since |dlogits| ≤ scale ≤ 1), with a few roundings more.
		Tol: (float64(cols)/512 + 60) * 0x1p-24,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			logits := random(rows*cols, seed)
			for i := range logits {
				logits[i] *= 8 // a spread like a language model's, e^±8
			}
			r := rand.New(rand.NewPCG(seed, 2))
			labels := make([]int32, rows)
			lb := make([]byte, 4*rows)
			for i := range labels {
				labels[i] = int32(r.IntN(cols))
				if ignored > 0 && i%ignored == 0 {
					labels[i] = ignore
				}
				binary.LittleEndian.PutUint32(lb[4*i:], uint32(labels[i]))
			}
			want := make([]float32, rows*cols+rows)
			cpu.CrossEntropy(want[:rows*cols], want[rows*cols:], logits, labels, cols, scale)
			// dlogits starts as garbage so unwritten elements show.
			in := f32bytes(append(make([]float32, off), logits...))
			dl := f32bytes(random(rows*cols, seed+3))
			outs, t, err := launch(dev, [][]byte{in, dl, make([]byte, 4*rows), lb}, func(e *metal.Encoder, b []*metal.Buffer) error {
				lg := kernels.Buf{Buffer: b[0], Off: 4 * off}
				dst := kernels.Whole(b[1])
				if alias {
					dst = lg
				}
				return lib.CrossEntropy(e, dst, kernels.Whole(b[2]), lg, kernels.Whole(b[3]), rows, cols, scale)
			})
			if err != nil {
				return nil, nil, t, err
			}
			got := f32s(outs[1])
			if alias {
				got = f32s(outs[0])[off:]
			}
			return append(got, f32s(outs[2])...), want, t, nil
		},
	}
}
