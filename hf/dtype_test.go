package hf

import (
	"math"
	"testing"
)

func TestHalfRoundTrip(t *testing.T) {
	// Every finite half value widens and narrows back to itself.
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		if got := F32ToF16(f); got != uint16(h) {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x (value %g)", h, got, f)
		}
	}
}

func TestBF16RoundTrip(t *testing.T) {
	for b := 0; b < 1<<16; b++ {
		f := BF16ToF32(uint16(b))
		if math.IsNaN(float64(f)) {
			continue
		}
		if got := F32ToBF16(f); got != uint16(b) {
			t.Fatalf("F32ToBF16(BF16ToF32(%#04x)) = %#04x", b, got)
		}
	}
}

func TestRounding(t *testing.T) {
	cases := []struct {
		name string
		in   float32
		bf16 uint16
		f16  uint16
	}{
		{"one", 1, 0x3f80, 0x3c00},
		{"bf16 half ulp above one rounds to even", 1 + 1.0/256, 0x3f80, 0x3c04},
		{"bf16 three halves ulp above one rounds up", 1 + 3.0/256, 0x3f82, 0x3c0c},
		{"f16 half ulp above one rounds to even", 1 + 1.0/2048, 0x3f80, 0x3c00},
		{"f16 three halves ulp above one rounds up", 1 + 3.0/2048, 0x3f80, 0x3c02},
		{"max half", 65504, 0x4780, 0x7bff},
		{"overflow half", 70000, 0x4789, 0x7c00},
		{"smallest half subnormal", 5.960464477539063e-08, 0x3380, 0x0001},
		{"minus two", -2, 0xc000, 0xc000},
	}
	for _, c := range cases {
		if got := F32ToBF16(c.in); got != c.bf16 {
			t.Errorf("%s: F32ToBF16(%g) = %#04x, want %#04x", c.name, c.in, got, c.bf16)
		}
		if got := F32ToF16(c.in); got != c.f16 {
			t.Errorf("%s: F32ToF16(%g) = %#04x, want %#04x", c.name, c.in, got, c.f16)
		}
	}
}
