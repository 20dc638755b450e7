package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/goseal/ttt/kernels/check"
)

// TestDoctor runs doctor on this machine's device (the MSL emulator off a
// Mac) and expects every check to pass and to be listed, after the system
// and device description.
func TestDoctor(t *testing.T) {
	var out strings.Builder
	if err := doctor(&out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	if n := strings.Count(got, " pass "); n != len(check.Cases()) {
		t.Errorf("%d passing rows, want %d:\n%s", n, len(check.Cases()), got)
	}
	if !strings.Contains(got, "PROBE") || !strings.Contains(got, "simd_shuffle_down past the last lane") {
		t.Errorf("no probes in:\n%s", got)
	}
	for _, want := range []string{"MODEL CHECK", "greedy generation", "LoRA training step: adapter after AdamW", "family:  Apple", "system:  ", "MSL:     3.1", "memory:  unified, ", "GiB recommended working set"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "MTL_DEBUG_LAYER") {
		t.Errorf("a debugging hint though every check passed:\n%s", got)
	}
}

func TestFamilyName(t *testing.T) {
	for _, tc := range []struct {
		family int
		want   string
	}{{0, "not an Apple GPU"}, {6, "Apple6"}, {9, "Apple9"}} {
		if got := familyName(tc.family); got != tc.want {
			t.Errorf("familyName(%d) = %q, want %q", tc.family, got, tc.want)
		}
	}
}

// TestDebugHint checks that a failing doctor points at the platform's
// debugging aids: Metal's validation layers on a Mac, the emulator's own
// checks elsewhere.
func TestDebugHint(t *testing.T) {
	h := debugHint()
	if !strings.Contains(h, "MTL_DEBUG_LAYER=1 MTL_SHADER_VALIDATION=1") {
		t.Errorf("hint %q does not name Metal's validation", h)
	}
	if runtime.GOOS != "darwin" && !strings.Contains(h, "data races") {
		t.Errorf("hint %q does not say what the emulator checks", h)
	}
}
