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

// elementwiseCases covers add, copy, fill, bias addition, SiLUMul and its
// backward, and dropout. A byte offset of 4 forces the scalar path, the
// buffer ending with the tensor; offsets 0 and 16 take the float4 path,
// which sizes off multiples of 4 give a ragged end (see pad).
func elementwiseCases() []Case {
	var cs []Case
	flat := []struct{ n, off int }{{1, 0}, {7, 4}, {64, 0}, {1003, 16}, {4099, 4}, {3 * 3584, 0}, {151936 + 3, 16}}
	for _, s := range flat {
		cs = append(cs, addCase(s.n, s.off, false), copyCase(s.n, s.off), fillCase(s.n, s.off),
			siluMulCase(s.n, s.off), siluMulBackwardCase(s.n, s.off))
	}
	cs = append(cs, addCase(1001, 0, true), addCase(1024, 16, true))
	biases := map[hf.DType][]struct{ rows, cols, off int }{
		hf.F32:  {{1, 1, 0}, {5, 7, 4}, {3, 896, 0}, {2, 3584, 16}},
		hf.F16:  {{1, 3, 0}, {4, 896, 4}, {3, 128, 16}},
		hf.BF16: {{7, 5, 0}, {3, 896, 0}, {2, 3584, 8}},
	}
	for _, dt := range []hf.DType{hf.F32, hf.F16, hf.BF16} {
		for _, s := range biases[dt] {
			cs = append(cs, addBiasCase(dt, s.rows, s.cols, s.off))
		}
	}
	for _, s := range []struct {
		n, off int
		p      float32
		seed   uint64
		alias  bool
	}{
		{1, 0, 0.5, 1, false}, {7, 4, 0.1, 2, false}, {1003, 0, 0.1, 3, false}, {1003, 16, 0.5, 3, true},
		{4099, 4, 0.5, 1<<40 + 5, true}, {3 * 896, 0, 0.1, 6, false}, {151936 + 1, 16, 0.1, 7, false},
		{100, 0, 0, 8, false}, {100, 0, 1, 8, false},
	} {
		cs = append(cs, dropoutCase(s.n, s.off, s.p, s.seed, s.alias))
	}
	return cs
}

// flatCase is a case over flat float32 tensors at byte offset off: ins are
// the inputs, outs the initial contents of the outputs; encode launches the
// kernel on their Bufs (outputs first); want gives the outputs expected.
// The outputs are compared whole, guard values included, in order.
func flatCase(kernel string, n, off int, tol float64, ins, outs []func() []float32,
	want func(ins, outs [][]float32), encode func(l *kernels.Library, e *metal.Encoder, b []kernels.Buf) error) Case {
	return Case{
		File:   "elementwise.metal",
		Kernel: kernel,
		Shape:  fmt.Sprintf("n=%d off=%d", n, off),
		Tol:    tol,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			var data [][]byte
			var in, out [][]float32
			for _, f := range outs {
				v := f()
				out = append(out, v)
				data = append(data, pad(f32bytes(v), off))
			}
			for _, f := range ins {
				v := f()
				in = append(in, v)
				data = append(data, pad(f32bytes(v), off))
			}
			got, t, err := launch(dev, data, func(e *metal.Encoder, b []*metal.Buffer) error {
				bufs := make([]kernels.Buf, len(b))
				for i := range b {
					bufs[i] = at(b[i], off)
				}
				return encode(lib, e, bufs)
			})
			if err != nil {
				return nil, nil, t, err
			}
			want(in, out)
			var g, w []float32
			for i := range out {
				g = append(g, f32s(got[i])...)
				w = append(w, f32s(pad(f32bytes(out[i]), off))...)
			}
			return g, w, t, nil
		},
	}
}

// values returns a generator of n random values in [-s, s).
func values(n int, seed uint64, s float32) func() []float32 {
	return func() []float32 { return scaled(random(n, seed), s) }
}

// Add, copy, fill and bias addition are one correctly rounded float
// operation (or none) per element on both sides: the results are
// identical, so their tolerance is zero.

func addCase(n, off int, alias bool) Case {
	seed := uint64(n*31 + off)
	ins := []func() []float32{values(n, seed, 1), values(n, seed+1, 1)}
	outs := []func() []float32{values(n, seed+2, 1)}
	kernel := "add"
	if alias {
		// out is a: the kernel reads a and writes out through one Buf.
		kernel = "add out=a"
		outs, ins = ins[:1], ins[1:]
	}
	return flatCase(kernel, n, off, 0, ins, outs,
		func(in, out [][]float32) {
			a, b := out[0], in[0]
			if !alias {
				a = in[0]
				b = in[1]
			}
			for i := range out[0] {
				out[0][i] = a[i] + b[i]
			}
		},
		func(l *kernels.Library, e *metal.Encoder, b []kernels.Buf) error {
			if alias {
				return l.Add(e, b[0], b[0], b[1], n)
			}
			return l.Add(e, b[0], b[1], b[2], n)
		})
}

func copyCase(n, off int) Case {
	seed := uint64(n*37 + off)
	return flatCase("copy", n, off, 0,
		[]func() []float32{values(n, seed, 1)}, []func() []float32{values(n, seed+1, 1)},
		func(in, out [][]float32) { copy(out[0], in[0]) },
		func(l *kernels.Library, e *metal.Encoder, b []kernels.Buf) error { return l.Copy(e, b[0], b[1], n) })
}

func fillCase(n, off int) Case {
	const v = -0.3125
	return flatCase("fill", n, off, 0, nil, []func() []float32{values(n, uint64(n), 1)},
		func(in, out [][]float32) {
			for i := range out[0] {
				out[0][i] = v
			}
		},
		func(l *kernels.Library, e *metal.Encoder, b []kernels.Buf) error { return l.Fill(e, b[0], n, v) })
}

// gateRange bounds |gate| in the SiLU cases: past ±8 the sigmoid saturates.
const gateRange = 8

func siluMulCase(n, off int) Case {
	seed := uint64(n*41 + off)
	// With safe math Metal's exp is within 4 ulp; 1+e^-g adds at most
	// half an ulp, the division and the product one more, and the
	// reference rounds its float64 exp once: under 7 ulp of the result,
	// 7·2⁻²³ relative. Allowed: 16 ulp.
	return flatCase("silu_mul", n, off, 16*0x1p-23,
		[]func() []float32{values(n, seed, gateRange), values(n, seed+1, 1)}, []func() []float32{values(n, seed+2, 1)},
		func(in, out [][]float32) { cpu.SiLUMul(out[0], in[0], in[1]) },
		func(l *kernels.Library, e *metal.Encoder, b []kernels.Buf) error {
			return l.SiLUMul(e, b[0], b[1], b[2], n)
		})
}

func siluMulBackwardCase(n, off int) Case {
	seed := uint64(n*43 + off)
	// σ(g) is within 6 ulp (as in siluMulCase). 1−σ is exact (Sterbenz)
	// but carries σ's absolute error, 6·2⁻²³, and |g| < 8 multiplies it
	// by up to 8: 48·2⁻²³ absolute in the factor 1+g·(1−σ), whose own
	// roundings and the products add a few ulp of a result at most
	// |dout·up| < 1. Under 56·2⁻²³ of max(1, |dgate|); allowed 128·2⁻²³.
	return flatCase("silu_mul_backward", n, off, 0x1p-16,
		[]func() []float32{values(n, seed, 1), values(n, seed+1, gateRange), values(n, seed+2, 1)},
		[]func() []float32{values(n, seed+3, 1), values(n, seed+4, 1)},
		func(in, out [][]float32) { cpu.SiLUMulBackward(out[0], out[1], in[0], in[1], in[2]) },
		func(l *kernels.Library, e *metal.Encoder, b []kernels.Buf) error {
			return l.SiLUMulBackward(e, b[0], b[1], b[2], b[3], b[4], n)
		})
}

func dropoutCase(n, off int, p float32, seed uint64, alias bool) Case {
	// The mask is integer arithmetic and kept elements one correctly
	// rounded product: the output is bit-identical to cpu.Dropout's.
	// x has no zeros, so a zero in the output is a dropped element and
	// comparing outputs exactly compares the masks.
	xs := func() []float32 { return nonzero(n, seed) }
	ins := []func() []float32{xs}
	outs := []func() []float32{values(n, seed+1, 1)}
	kernel := fmt.Sprintf("dropout p=%g seed=%d", p, seed)
	if alias {
		kernel += " out=x"
		outs, ins = ins, nil
	}
	return flatCase(kernel, n, off, 0, ins, outs,
		func(in, out [][]float32) {
			x := out[0]
			if !alias {
				x = in[0]
			}
			cpu.Dropout(out[0], x, p, nn.DropoutKey(seed))
		},
		func(l *kernels.Library, e *metal.Encoder, b []kernels.Buf) error {
			if alias {
				return l.Dropout(e, b[0], b[0], n, p, seed)
			}
			return l.Dropout(e, b[0], b[1], n, p, seed)
		})
}

func addBiasCase(dt hf.DType, rows, cols, off int) Case {
	seed := uint64(rows*7919 + cols*3 + off)
	return Case{
		File:   "elementwise.metal",
		Kernel: "add_bias " + dt.String(),
		Shape:  fmt.Sprintf("rows=%d cols=%d off=%d", rows, cols, off),
		Tol:    0, // one correctly rounded addition of an exactly widened bias
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			x := random(rows*cols, seed)
			bb, bias := weights(random(cols, seed+1), dt)
			outs, t, err := launch(dev, [][]byte{pad(f32bytes(x), off), pad(bb, off)}, func(e *metal.Encoder, b []*metal.Buffer) error {
				return lib.AddBias(e, at(b[0], off), at(b[1], off), dt, rows, cols)
			})
			if err != nil {
				return nil, nil, t, err
			}
			// The CPU backend's AddBias loop.
			for r := 0; r < rows; r++ {
				for i, v := range bias {
					x[r*cols+i] += v
				}
			}
			return f32s(outs[0]), f32s(pad(f32bytes(x), off)), t, nil
		},
	}
}
