// Package check runs every kernel of package kernels on a Metal device (the
// GPU on a Mac, the MSL emulator elsewhere) against its Go reference, the
// CPU backend's op in package cpu, over a set of shapes. The kernel tests and
// `seal-ttt doctor` share these cases; adding a kernel adds its cases here.
package check

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
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
	cs := matmulCases()
	cs = append(cs, attnCases()...)
	cs = append(cs, rmsnormCases()...)
	cs = append(cs, elementwiseCases()...)
	cs = append(cs, rowsCases()...)
	cs = append(cs, ropeCases()...)
	cs = append(cs, adamWCases()...)
	cs = append(cs, crossEntropyCases()...)
	cs = append(cs, reduceCases()...)
	cs = append(cs, sampleCases()...)
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
func weights(w []float32, dt hf.DType) ([]byte, []float32) {
	ref := make([]float32, len(w))
	var b []byte
	for i, v := range w {
		switch dt {
		case hf.F32:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			ref[i] = v
		case hf.F16:
			h := hf.F32ToF16(v)
			b = binary.LittleEndian.AppendUint16(b, h)
			ref[i] = hf.F16ToF32(h)
		case hf.BF16:
			h := hf.F32ToBF16(v)
			b = binary.LittleEndian.AppendUint16(b, h)
			ref[i] = hf.BF16ToF32(h)
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
