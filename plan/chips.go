package plan

import (
	"fmt"
	"strings"
)

// Chip is an Apple chip's GPU as the roofline sees it. docs/apple-chips.md
// gives every figure's source; a test keeps that table and this one equal.
type Chip struct {
	Name     string // e.g. "M2 Max", the largest GPU of that name
	GPUCores int
	// ClockGHz is the GPU clock the float32 rate is computed from.
	ClockGHz float64
	// BandwidthGBs is the memory bandwidth in GB/s (10^9 bytes).
	BandwidthGBs float64
	// FP32TFLOPS and FP16TFLOPS are the GPU's peak rates, 10^12 FLOP/s:
	// cores · 128 ALUs · 2 FLOPs per fused multiply-add · clock.
	FP32TFLOPS, FP16TFLOPS float64
	// MaxMemoryGB is the largest unified memory the chip is sold with.
	MaxMemoryGB int
}

// FLOPsPerCoreCycle is an Apple GPU core's float32 (and float16) FLOPs per
// cycle: 128 ALUs, a fused multiply-add each.
const FLOPsPerCoreCycle = 256

// Chips are the Apple chips from M1 to M4, base, Pro, Max and Ultra, each
// in its largest GPU configuration (see docs/apple-chips.md for the binned
// ones). There is no M4 Ultra.
var Chips = []Chip{
	{"M1", 8, 1.278, 68.3, 2.62, 2.62, 16},
	{"M1 Pro", 16, 1.296, 200, 5.31, 5.31, 32},
	{"M1 Max", 32, 1.296, 400, 10.62, 10.62, 64},
	{"M1 Ultra", 64, 1.296, 800, 21.23, 21.23, 128},
	{"M2", 10, 1.398, 100, 3.58, 3.58, 24},
	{"M2 Pro", 19, 1.398, 200, 6.80, 6.80, 32},
	{"M2 Max", 38, 1.398, 400, 13.60, 13.60, 96},
	{"M2 Ultra", 76, 1.398, 800, 27.20, 27.20, 192},
	{"M3", 10, 1.38, 100, 3.53, 3.53, 24},
	{"M3 Pro", 18, 1.38, 150, 6.36, 6.36, 36},
	{"M3 Max", 40, 1.38, 400, 14.13, 14.13, 128},
	{"M3 Ultra", 80, 1.38, 819, 28.26, 28.26, 512},
	{"M4", 10, 1.38, 120, 3.53, 3.53, 32},
	{"M4 Pro", 20, 1.38, 273, 7.07, 7.07, 64},
	{"M4 Max", 40, 1.38, 546, 14.13, 14.13, 128},
}

// chipKey folds a chip name for lookup: lower case, without spaces, dashes
// or underscores ("M2 Max", "m2-max" and "m2max" are one).
func chipKey(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '_' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// ChipByName returns the chip called name, e.g. "M2 Max" or "m4pro".
func ChipByName(name string) (Chip, error) {
	for _, c := range Chips {
		if chipKey(c.Name) == chipKey(name) {
			return c, nil
		}
	}
	names := make([]string, len(Chips))
	for i, c := range Chips {
		names[i] = c.Name
	}
	return Chip{}, fmt.Errorf("unknown chip %q (want one of %s)", name, strings.Join(names, ", "))
}
