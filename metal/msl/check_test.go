//go:build !darwin

package msl

import (
	"strings"
	"testing"
)

const checkHeader = "#include <metal_stdlib>\nusing namespace metal;\n"

// TestCheck plants mistakes that C++ would accept and expects the strict
// check to reject each one; the correct versions must pass.
func TestCheck(t *testing.T) {
	tests := []struct {
		name, src string
		want      string // "" for a kernel that must pass
	}{
		{"correct kernel", `
inline float twice(thread const float* p) { return 2 * *p; }
template <typename T>
kernel void k(device const T* a [[buffer(0)]], device float* out [[buffer(1)]],
              constant uint& n [[buffer(2)]], threadgroup float* scratch [[threadgroup(0)]],
              uint i [[thread_position_in_grid]], uint l [[thread_index_in_threadgroup]]) {
	threadgroup float tile[64];
	threadgroup float other[8 * 8];
	float v = float(a[i]);
	tile[l] = twice(&v);
	threadgroup_barrier(mem_flags::mem_threadgroup);
	simdgroup_float8x8 m;
	simdgroup_load(m, &other[0], 8);
	simdgroup_store(m, out, 8);
	float4 f = float4(int4(1, 2, 3, 4));
	if (i < n) out[i] = simd_sum(tile[l]) + scratch[l] + f.x;
}
template [[host_name("k_f32")]] [[kernel]] void k<float>(device const float* a [[buffer(0)]],
	device float* out [[buffer(1)]], constant uint& n [[buffer(2)]], threadgroup float* scratch [[threadgroup(0)]],
	uint i [[thread_position_in_grid]], uint l [[thread_index_in_threadgroup]]);
`, ""},
		{"device pointer for a thread pointer", `
inline float twice(thread const float* p) { return 2 * *p; }
kernel void k(device float* a [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	a[i] = twice(a + i);
}`, "cannot pass pointer to address space '__global' as a pointer to address space '__private'"},
		{"device pointer for an unqualified pointer", `
inline float twice(const float* p) { return 2 * *p; }
kernel void k(device float* a [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	a[i] = twice(a + i);
}`, "cannot pass pointer to address space '__global'"},
		{"threadgroup pointer into a device pointer", `
kernel void k(device float* a [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	threadgroup float tile[32];
	device float* p = &tile[0];
	p[i] = a[i];
}`, "cannot initialize a variable of type '__global float *__private' with an rvalue of type '__local float *'"},
		{"write through a constant pointer", `
kernel void k(constant float* a [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	device float* p = a;
	p[i] = 1;
}`, "cannot initialize a variable of type '__global float *__private' with an lvalue of type '__constant float *"},
		{"simdgroup load from thread memory", `
kernel void k(device float* a [[buffer(0)]]) {
	float local[64];
	simdgroup_float8x8 m;
	simdgroup_load(m, local, 8);
	simdgroup_store(m, a, 8);
}`, "no matching function for call to 'simdgroup_load'"},
		{"C-style vector cast", `
kernel void k(device float4* a [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	int4 v = int4(1, 2, 3, 4);
	a[i] = (float4)v;
}`, "C-style cast to vector type float4"},
		{"unknown attribute", `
kernel void k(device float* a [[buffer(0)]], uint i [[thread_id_in_grid]]) {}`,
			`unknown attribute "thread_id_in_grid"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(checkHeader + tc.src)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("correct kernel rejected: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("mistake not caught")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
