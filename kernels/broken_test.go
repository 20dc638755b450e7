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
			wantErr: "data race on threadgroup array partial (rmsnorm.metal:",
		},
		{
			name: "missing barrier after staging the tiles",
			file: "matmul.metal",
			old: `(b_tile, b, p.trans_b ? k : n, p.trans_b, p.vec_b, k0, col0, k_end, n, tid);
		threadgroup_barrier(mem_flags::mem_threadgroup);`,
			new:     `(b_tile, b, p.trans_b ? k : n, p.trans_b, p.vec_b, k0, col0, k_end, n, tid);`,
			family:  "matmul",
			wantErr: "data race on threadgroup array",
		},
		{
			name:   "split-K layers writing over each other",
			file:   "matmul.metal",
			old:    `device float* out = c + group.z * m * n;`,
			new:    `device float* out = c;`,
			family: "matmul",
		},
		{
			name:    "off-by-one guard",
			file:    "matmul.metal",
			old:     `if (i >= p.count)`,
			new:     `if (i > p.count)`,
			family:  "matmul",
			wantErr: "out-of-bounds access to buffer 0 (part)",
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
		{
			name:   "dropout hash off by one bit",
			file:   "elementwise.metal",
			old:    `x *= 0x846ca68bu;`,
			new:    `x *= 0x846ca68au;`,
			family: "dropout",
		},
		{
			name:   "float4 path loses its ragged end",
			file:   "elementwise.metal",
			old:    `return vec ? uint2(4 * t, n)`,
			new:    `return vec ? uint2(4 * t + 1, n)`,
			family: "add",
		},
		{
			name:    "embed trusts an id one past the table",
			file:    "rows.metal",
			old:     `const bool ok = id < p.table_rows;`,
			new:     `const bool ok = id <= p.table_rows;`,
			family:  "embed",
			wantErr: "out-of-bounds access to buffer 0 (table)",
		},
		{
			name:    "rope trusts a position one past the table",
			file:    "rope.metal",
			old:     `if (q >= p.positions)`,
			new:     `if (q > p.positions)`,
			family:  "rope",
			wantErr: "out-of-bounds access to buffer 1 (table)",
		},
		{
			name:   "target logit read after the gradient overwrote it",
			file:   "crossentropy.metal",
			old:    `(mx + log(sum)) - target[0];`,
			new:    `(mx + log(sum)) - lr[label];`,
			family: "crossentropy",
		},
		{
			name:   "the last partial left out of stage 2",
			file:   "reduce.metal",
			old:    `for (uint i = tid; i < p.n; i += nthreads)`,
			new:    `for (uint i = tid; i + 1 < p.n; i += nthreads)`,
			family: "sum",
		},
		{
			name:   "gradients not clipped",
			file:   "adamw.metal",
			old:    `const float g = grad[i] * clip;`,
			new:    `const float g = grad[i];`,
			family: "adamw",
		},
		{
			name:   "attention sees one key past the causal limit",
			file:   "attention.metal",
			old:    `float e = (live && j0 + c <= lim) ? exp2(`,
			new:    `float e = (live && j0 + c <= lim + 1) ? exp2(`,
			family: "attention",
		},
		{
			name:   "decode leaves out each chunk's last key",
			file:   "attention.metal",
			old:    `for (uint j = c.key0 + sg; j < c.key1; j += DEC_SG) {`,
			new:    `for (uint j = c.key0 + sg; j + 1 < c.key1; j += DEC_SG) {`,
			family: "attention decode",
		},
		{
			name:   "attention backward drops the diagonal",
			file:   "attention.metal",
			old:    `j <= attn_limit(b.past + i0 + r, b.keys)) {`,
			new:    `j < attn_limit(b.past + i0 + r, b.keys)) {`,
			family: "attention backward",
		},
		{
			name:   "silu backward forgets the derivative of the sigmoid",
			file:   "elementwise.metal",
			old:    `dgate[i] = d * u * sig * (1.0f + g * (1.0f - sig));`,
			new:    `dgate[i] = d * u * sig;`,
			family: "silu_mul_backward",
		},
		{
			name:   "set_rows writes one row down",
			file:   "rows.metal",
			old:    `const uint d = uint(rows[t.y]);`,
			new:    `const uint d = uint(rows[t.y]) + 1;`,
			family: "set_rows",
		},
		{
			name:   "rmsnorm backward drops the term through the norm",
			file:   "rmsnorm.metal",
			old:    `dxr[i] = inv * widen(weight[i]) * dyr[i] - xr[i] * c;`,
			new:    `dxr[i] = inv * widen(weight[i]) * dyr[i];`,
			family: "rmsnorm_backward",
		},
		{
			name:   "decode merges chunks without their weights",
			file:   "attention.metal",
			old:    `acc += base[s * stride + 2 + x] * exp2(base[s * stride] - mm);`,
			new:    `acc += base[s * stride + 2 + x];`,
			family: "attention decode",
		},
		{
			name:   "matvec skips the last column of a ragged row",
			file:   "matmul.metal",
			old:    `for (uint q = lane; q < k; q += 32) {`,
			new:    `for (uint q = lane; q + 1 < k; q += 32) {`,
			family: "matmul",
		},
		{
			name:   "copy changes the bits",
			file:   "elementwise.metal",
			old:    `dst[i] = src[i];`,
			new:    `dst[i] = src[i] + 1u;`,
			family: "copy",
		},
		{
			name:   "fill writes the value's negative",
			file:   "elementwise.metal",
			old:    `x[i] = p.value;`,
			new:    `x[i] = -p.value;`,
			family: "fill",
		},
		{
			name:   "bias subtracted",
			file:   "elementwise.metal",
			old:    `xr[t.x] += widen(bias[t.x]);`,
			new:    `xr[t.x] -= widen(bias[t.x]);`,
			family: "add_bias",
		},
		{
			name:   "silu with the sigmoid's sign flipped",
			file:   "elementwise.metal",
			old:    `out[i] = gate[i] / (1.0f + exp(-gate[i])) * up[i];`,
			new:    `out[i] = gate[i] / (1.0f + exp(gate[i])) * up[i];`,
			family: "silu_mul",
		},
		{
			name:   "sum of squares keeps the signs",
			file:   "reduce.metal",
			old:    `acc += SQUARE ? v * v : v;`,
			new:    `acc += SQUARE ? v * abs(v) : v;`,
			family: "sumsquares",
		},
		{
			name: "tied weights at the threshold left out of the draw",
			file: "sample.metal",
			old: `		if (w < tau)
			continue;`,
			new: `		if (w <= tau)
			continue;`,
			family: "sample",
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
				if c.Kernel != tc.family && !strings.HasPrefix(c.Kernel, tc.family+" ") {
					continue
				}
				r := c.Run(d, lib)
				if r.Pass(c) {
					continue
				}
				failed++
				if tc.wantErr != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tc.wantErr)) {
					t.Errorf("%s %s: got error %v, want one containing %q", c.Kernel, c.Shape, r.Err, tc.wantErr)
				}
			}
			if failed == 0 {
				t.Error("the broken kernel passed every check")
			}
		})
	}
}
