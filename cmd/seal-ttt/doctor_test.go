package main

import (
	"strings"
	"testing"

	"github.com/goseal/ttt/kernels/check"
)

// TestDoctor runs doctor on this machine's device (the MSL emulator off a
// Mac) and expects every check to pass and to be listed.
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
	if !strings.Contains(got, "family:  Apple") {
		t.Errorf("no device family in:\n%s", got)
	}
}
