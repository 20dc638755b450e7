//go:build !darwin

// Planted bugs run only on the emulator: on a GPU an out-of-bounds store
// writes over other memory and a divergent barrier is undefined behaviour.

package kernels_test

import (
	"strings"
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/kernels/check"
)

// TestBrokenKernels plants classic mistakes in the real kernels and expects
// the checks to report each as an error from the emulator: a data race,
// barrier divergence, an out-of-bounds access.
func TestBrokenKernels(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		old, new string // the edit that breaks the kernel
		family   string // the check.Case kernels to run
		wantErr  string // what the error says
	}{
		{
			name: "missing barrier after the partial sums",
			file: "rmsnorm.metal",
			old: `		partial[sg] = ss;
	threadgroup_barrier(mem_flags::mem_threadgroup);`,
			new:     `		partial[sg] = ss;`,
			family:  "rmsnorm",
			wantErr: "data race on threadgroup array partial (rmsnorm.metal:24)",
		},
		{
			name: "missing barrier after staging the tiles",
			file: "matmul.metal",
			old: `			b_tile[q * TN + s] = v;
		}
		threadgroup_barrier(mem_flags::mem_threadgroup);`,
			new: `			b_tile[q * TN + s] = v;
		}`,
			family:  "matmul",
			wantErr: "data race on threadgroup array",
		},
		{
			name:    "off-by-one store",
			file:    "matmul.metal",
			old:     `if (gi < m && gj < n) {`,
			new:     `if (gi <= m && gj < n) {`,
			family:  "matmul",
			wantErr: "out-of-bounds access to buffer 2 (c)",
		},
		{
			name: "barrier in a divergent branch",
			file: "rmsnorm.metal",
			old: `	threadgroup_barrier(mem_flags::mem_threadgroup);
	const float inv`,
			new: `	if (tid != 0)
		threadgroup_barrier(mem_flags::mem_threadgroup);
	const float inv`,
			family:  "rmsnorm",
			wantErr: "barrier divergence",
		},
	}
	d, _ := library(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := kernels.FileSource(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(src, tc.old) != 1 {
				t.Fatalf("%s does not contain the text to break exactly once", tc.file)
			}
			lib, err := kernels.LoadWith(d, map[string]string{tc.file: strings.Replace(src, tc.old, tc.new, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer lib.Release()
			failed := 0
			for _, c := range check.Cases() {
				if !strings.HasPrefix(c.Kernel, tc.family+" ") {
					continue
				}
				r := c.Run(d, lib)
				if r.Pass(c) {
					continue
				}
				failed++
				if r.Err == nil || !strings.Contains(r.Err.Error(), tc.wantErr) {
					t.Errorf("%s %s: got error %v, want one containing %q", c.Kernel, c.Shape, r.Err, tc.wantErr)
				}
			}
			if failed == 0 {
				t.Error("the broken kernel passed every check")
			}
		})
	}
}
