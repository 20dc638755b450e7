//go:build !darwin

package check_test

import (
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/kernels/check"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/metal/msl"
)

// TestProbesOnEmulator checks that the emulator behaves as the probes say
// it does, and that the probe kernel passes the strict check.
func TestProbesOnEmulator(t *testing.T) {
	dev, err := metal.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ps, err := check.Probes(dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Device != p.Emulator {
			t.Errorf("%s: the emulator gives %q, the probe says it assumes %q", p.Name, p.Device, p.Emulator)
		}
	}
	if err := msl.Check(check.ProbeSource()); err != nil {
		t.Error(err)
	}
}

// TestCaseFiles checks that every case names the kernel file it tests, as
// the planted-barrier test in package kernels relies on.
func TestCaseFiles(t *testing.T) {
	files := map[string]bool{}
	for _, f := range kernels.Files() {
		files[f] = true
	}
	for _, c := range check.Cases() {
		if !files[c.File] {
			t.Errorf("%s %s: File %q is not a kernel file", c.Kernel, c.Shape, c.File)
		}
	}
}
