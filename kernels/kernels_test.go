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
