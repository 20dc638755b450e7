package kernels_test

import (
	"sync"
	"testing"

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

func BenchmarkRMSNorm128x4096(b *testing.B) {
	d, l := library(b)
	const rows, cols = 128, 4096
	x, _ := d.NewBuffer(4 * rows * cols)
	out, _ := d.NewBuffer(4 * rows * cols)
	w, _ := d.NewBuffer(2 * cols)
	defer x.Release()
	defer out.Release()
	defer w.Release()
	b.SetBytes(4 * rows * cols)
	for b.Loop() {
		cb, _ := d.NewCommandBuffer()
		e := cb.Encoder()
		if err := l.RMSNorm(e, kernels.Whole(out), kernels.Whole(x), kernels.Whole(w), kernels.BF16, rows, cols, 1e-6); err != nil {
			b.Fatal(err)
		}
		e.End()
		cb.Commit()
		if err := cb.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}
