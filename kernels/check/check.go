// Package check runs every kernel of package kernels on a Metal device (the
// GPU on a Mac, the MSL emulator elsewhere) against its Go reference, the
// CPU backend's op in package nn, over a set of shapes. The kernel tests and
// `seal-ttt doctor` share these cases; adding a kernel adds its cases here.
package check

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// Case is one kernel run on one shape.
type Case struct {
	Kernel string  // the op and weight type, e.g. "matmul bf16"
	File   string  // the .metal file of package kernels the kernel is in
	Family int     // the Apple GPU family the kernel needs (7: simdgroup matrices), 0 for any
	Shape  string  // e.g. "m=65 n=63 k=67 transB"
	Tol    float64 // the largest error that passes (see Result.MaxErr)
	run    func(dev *metal.Device, lib *kernels.Library) (got, want []float32, gpu time.Duration, err error)
}

// Result is the outcome of a Case.
type Result struct {
	// MaxErr is the largest |got-want| / max(1, |want|) over the output:
	// absolute for small values, relative for large ones.
	MaxErr float64
	Time   time.Duration // from commit to completion on the device
	Err    error         // a launch or device error
}

// Pass reports whether the case ran and stayed within its tolerance.
func (r Result) Pass(c Case) bool { return r.Err == nil && r.MaxErr <= c.Tol }

// Run runs c on dev with the kernels of lib.
func (c Case) Run(dev *metal.Device, lib *kernels.Library) Result {
	got, want, t, err := c.run(dev, lib)
	if err != nil {
		return Result{MaxErr: math.Inf(1), Time: t, Err: err}
	}
	r := Result{Time: t}
	for i := range want {
		d := math.Abs(float64(got[i])-float64(want[i])) / math.Max(1, math.Abs(float64(want[i])))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		r.MaxErr = math.Max(r.MaxErr, d)
	}
	return r
}

// Cases returns every case: each kernel and weight type over shapes that
// include single elements, sizes off the tile multiples, and long rows.
func Cases() []Case {
	var cs []Case
	type mm struct {
		m, n, k                    int
		transA, transB, accumulate bool
	}
	mms := map[kernels.DType][]mm{
		kernels.F32: {
			{1, 1, 1, false, false, false}, {7, 5, 3, false, true, false}, {64, 64, 64, false, false, false},
			{65, 63, 67, true, false, true}, {65, 63, 67, false, true, false}, {33, 17, 4096, false, true, false},
			{100, 1, 7, true, true, false}, {1, 4096, 64, false, true, false}, {1, 65, 4096, false, false, true},
			{1, 7, 1, true, false, false}, {1, 9, 13, false, true, false},
		},
		kernels.F16: {
			{7, 5, 3, false, true, false}, {65, 63, 67, false, true, true}, {64, 64, 64, true, false, false},
			{1, 130, 67, false, true, false}, {1, 70, 128, false, true, true}, {1, 33, 65, false, false, false},
		},
		kernels.BF16: {
			{7, 5, 3, false, true, false}, {65, 63, 67, false, true, true}, {64, 64, 64, true, false, false},
			{1, 130, 67, false, true, false}, {1, 70, 4096, false, true, false}, {1, 33, 65, false, false, false},
			{9, 40, 4096, false, true, false},
		},
	}
	for _, dt := range []kernels.DType{kernels.F32, kernels.F16, kernels.BF16} {
		for _, s := range mms[dt] {
			cs = append(cs, matmulCase(dt, s.m, s.n, s.k, s.transA, s.transB, s.accumulate))
		}
	}
	norms := map[kernels.DType][][2]int{
		kernels.F32:  {{1, 1}, {7, 7}, {3, 64}, {5, 65}, {2, 4096}, {4, 1000}},
		kernels.F16:  {{3, 64}, {5, 65}, {2, 4096}},
		kernels.BF16: {{1, 1}, {3, 64}, {5, 65}, {2, 4096}},
	}
	for _, dt := range []kernels.DType{kernels.F32, kernels.F16, kernels.BF16} {
		for _, s := range norms[dt] {
			cs = append(cs, rmsnormCase(dt, s[0], s[1]))
		}
	}
	return cs
}

// random returns n values uniform in [-1, 1), the same for the same seed.
func random(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5ea1))
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

// weights stores w as dtype dt and returns the bytes and the float32 values
// those bytes hold, which is what the reference computes with.
func weights(w []float32, dt kernels.DType) ([]byte, []float32) {
	ref := make([]float32, len(w))
	var b []byte
	for i, v := range w {
		switch dt {
		case kernels.F32:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			ref[i] = v
		case kernels.F16:
			h := nn.F32ToF16(v)
			b = binary.LittleEndian.AppendUint16(b, h)
			ref[i] = nn.F16ToF32(h)
		case kernels.BF16:
			h := nn.F32ToBF16(v)
			b = binary.LittleEndian.AppendUint16(b, h)
			ref[i] = nn.BF16ToF32(h)
		}
	}
	return b, ref
}

func f32bytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func f32s(b []byte) []float32 {
	f := make([]float32, len(b)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return f
}

// launch makes buffers holding ins, lets encode encode onto one command
// buffer, and returns the contents of the buffers afterwards with the time
// from commit to completion.
func launch(dev *metal.Device, ins [][]byte, encode func(e *metal.Encoder, bufs []*metal.Buffer) error) ([][]byte, time.Duration, error) {
	var bufs []*metal.Buffer
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	for _, in := range ins {
		b, err := dev.NewBufferFrom(in)
		if err != nil {
			return nil, 0, err
		}
		bufs = append(bufs, b)
	}
	cb, err := dev.NewCommandBuffer()
	if err != nil {
		return nil, 0, err
	}
	e := cb.Encoder()
	err = encode(e, bufs)
	e.End()
	if err != nil {
		cb.Wait() // releases the command buffer, which was not committed
		return nil, 0, err
	}
	start := time.Now()
	cb.Commit()
	err = cb.Wait()
	t := time.Since(start)
	var outs [][]byte
	for _, b := range bufs {
		outs = append(outs, append([]byte(nil), b.Bytes()...))
	}
	return outs, t, err
}

func matmulCase(dt kernels.DType, m, n, k int, transA, transB, accumulate bool) Case {
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{transA, "transA"}, {transB, "transB"}, {accumulate, "accumulate"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	name := "matmul"
	if m == 1 {
		name = "matvec"
	}
	seed := uint64(m*1_000_003 + n*1009 + k)
	family := 7 // the tiled kernel multiplies simdgroup matrices
	if m == 1 {
		family = 0
	}
	return Case{
		Family: family,
		Kernel: name + " " + dt.String(),
		File:   "matmul.metal",
		Shape:  strings.TrimSpace(fmt.Sprintf("m=%d n=%d k=%d %s", m, n, k, strings.Join(flags, " "))),
		// Both sides add k products of values in [-1, 1) in float32, in
		// different orders (and the device may fuse multiply-adds). Each
		// rounding is at most 2^-24 of a partial sum; the errors of k
		// roundings, of random sign, stay well below k·2^-22 relative to
		// max(1, |c|), a bound that a wrong element (error ~1) breaks.
		Tol: float64(max(k, 16)) * 0x1p-22,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			a := random(m*k, seed)
			wb, wref := weights(random(k*n, seed+1), dt)
			c0 := random(m*n, seed+2)
			want := append([]float32(nil), c0...)
			nn.MatMul(want, a, wref, m, n, k, transA, transB, accumulate)
			outs, t, err := launch(dev, [][]byte{f32bytes(c0), f32bytes(a), wb}, func(e *metal.Encoder, b []*metal.Buffer) error {
				return lib.MatMul(e, kernels.Whole(b[0]), kernels.Whole(b[1]), kernels.Whole(b[2]), dt, m, n, k, transA, transB, accumulate)
			})
			if err != nil {
				return nil, nil, t, err
			}
			return f32s(outs[0]), want, t, nil
		},
	}
}

func rmsnormCase(dt kernels.DType, rows, cols int) Case {
	const eps = 1e-6
	seed := uint64(rows*7919 + cols)
	return Case{
		Kernel: "rmsnorm " + dt.String(),
		File:   "rmsnorm.metal",
		Shape:  fmt.Sprintf("rows=%d cols=%d", rows, cols),
		// The mean square sums cols squares in a different order on each
		// side: at most cols roundings of 2^-24 relative each; the output
		// inherits half of that relative error plus a few roundings.
		Tol: float64(cols+16) * 0x1p-24,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			x := random(rows*cols, seed)
			wb, wref := weights(random(cols, seed+1), dt)
			want := make([]float32, rows*cols)
			nn.RMSNorm(want, x, wref, rows, cols, eps)
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
