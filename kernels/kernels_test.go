package kernels_test

import (
	"sync"
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/kernels/check"
	"github.com/goseal/ttt/metal"
)

var (
	setup   sync.Once
	dev     *metal.Device
	lib     *kernels.Library
	loadErr error
)

// library returns the device and the kernel library, compiled with safe
// math as doctor does.
func library(t testing.TB) (*metal.Device, *kernels.Library) {
	setup.Do(func() {
		dev, loadErr = metal.Open()
		if loadErr == nil {
			lib, loadErr = kernels.Load(dev, metal.CompileOptions{})
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return dev, lib
}

// TestKernels runs every kernel against its Go reference over the shapes
// of check.Cases.
func TestKernels(t *testing.T) {
	d, l := library(t)
	for _, c := range check.Cases() {
		t.Run(c.Kernel+" "+c.Shape, func(t *testing.T) {
			r := c.Run(d, l)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if !r.Pass(c) {
				t.Errorf("max error %.3g exceeds %.3g", r.MaxErr, c.Tol)
			}
		})
	}
}

// benchMatMul measures one c = a·op(b) dispatch (commit to completion).
func benchMatMul(b *testing.B, dt hf.DType, m, n, k int, transB bool) {
	d, l := library(b)
	bufs := make([]*metal.Buffer, 3)
	for i, size := range []int{4 * m * n, 4 * m * k, dt.Size() * k * n} {
		buf, err := d.NewBuffer(size)
		if err != nil {
			b.Fatal(err)
		}
		defer buf.Release()
		bufs[i] = buf
	}
	b.SetBytes(int64(dt.Size() * k * n))
	b.ResetTimer()
	for b.Loop() {
		cb, err := d.NewCommandBuffer()
		if err != nil {
			b.Fatal(err)
		}
		e := cb.Encoder()
		if err := l.MatMul(e, kernels.Whole(bufs[0]), kernels.Whole(bufs[1]), kernels.Whole(bufs[2]), dt, m, n, k, false, transB, false); err != nil {
			b.Fatal(err)
		}
		e.End()
		cb.Commit()
		if err := cb.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkMatMul256F32(b *testing.B)        { benchMatMul(b, hf.F32, 256, 256, 256, false) }
func BenchmarkMatMul256BF16(b *testing.B)       { benchMatMul(b, hf.BF16, 256, 256, 256, true) }
func BenchmarkMatMul128x1024BF16(b *testing.B)  { benchMatMul(b, hf.BF16, 128, 1024, 1024, true) }
func BenchmarkMatMul128x64x64BF16(b *testing.B) { benchMatMul(b, hf.BF16, 128, 64, 64, true) }
func BenchmarkMatVec4096BF16(b *testing.B)      { benchMatMul(b, hf.BF16, 1, 4096, 4096, true) }
func BenchmarkMatVec4096NF16(b *testing.B)      { benchMatMul(b, hf.F16, 1, 4096, 4096, false) }
