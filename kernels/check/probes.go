package check

import (
	_ "embed"
	"fmt"

	"github.com/goseal/ttt/metal"
)

//go:embed probes.metal
var probeSource string

// ProbeSource is the MSL of the probe kernel.
func ProbeSource() string { return probeSource }

// Probe is one behaviour that MSL leaves to the device: what the emulator
// assumes, and what the device did.
type Probe struct {
	Name     string
	Emulator string
	Device   string
}

// probes reads each probe's outcome from the probe kernel's output.
var probes = []struct {
	name     string
	emulator string
	describe func(out []float32) string
}{
	{"simdgroup_load origin (x, y)", "(column, row)", func(o []float32) string {
		switch o[0] {
		case 1:
			return "(column, row)"
		case 16:
			return "(row, column)"
		}
		return fmt.Sprintf("unexpected element %v", o[0])
	}},
	{"simdgroup_load transpose", "swaps rows and columns", func(o []float32) string {
		switch o[1] {
		case 16:
			return "swaps rows and columns"
		case 1:
			return "no effect"
		}
		return fmt.Sprintf("unexpected element %v", o[1])
	}},
	{"simd_shuffle_down past the last lane", "the lane's own value", func(o []float32) string {
		if o[2] == 31 {
			return "the lane's own value"
		}
		return fmt.Sprintf("%v", o[2])
	}},
	{"float subnormal results", "kept", func(o []float32) string {
		if o[3] == 0 {
			return "flushed to zero"
		}
		return "kept"
	}},
	{"unsuffixed floating literals", "double, then rounded", func(o []float32) string {
		if o[4] == 1 {
			return "double, then rounded"
		}
		return "float"
	}},
}

// Probes runs the probe kernel on dev and reports each behaviour.
func Probes(dev *metal.Device) ([]Probe, error) {
	lib, err := dev.NewLibrary(probeSource, metal.CompileOptions{})
	if err != nil {
		return nil, fmt.Errorf("probes: %w", err)
	}
	defer lib.Release()
	p, err := lib.Pipeline("probe")
	if err != nil {
		return nil, fmt.Errorf("probes: %w", err)
	}
	in := make([]float32, 258)
	for i := range 256 {
		in[i] = float32(i)
	}
	in[256], in[257] = 1e-38, 1e-3
	outs, _, err := launch(dev, [][]byte{make([]byte, 4*len(probes)), f32bytes(in)}, func(e *metal.Encoder, b []*metal.Buffer) error {
		e.SetPipeline(p)
		e.SetBuffer(0, b[0], 0)
		e.SetBuffer(1, b[1], 0)
		e.Dispatch(metal.Size{X: 1, Y: 1, Z: 1}, metal.Size{X: 32, Y: 1, Z: 1})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("probes: %w", err)
	}
	out := f32s(outs[0])
	var res []Probe
	for _, pr := range probes {
		res = append(res, Probe{Name: pr.name, Emulator: pr.emulator, Device: pr.describe(out)})
	}
	return res, nil
}
