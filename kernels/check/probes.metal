// Probes of behaviours the MSL emulator has to assume and a GPU decides.
// Kernels do not depend on them; seal-ttt doctor reports what the device
// does so the emulator can be brought in line. One SIMD group of 32 threads.

#include <metal_stdlib>
using namespace metal;

kernel void probe(device float* out [[buffer(0)]],
                  device const float* in [[buffer(1)]],
                  uint lane [[thread_index_in_simdgroup]]) {
	threadgroup float m[16 * 16];
	threadgroup float st[2 * 64];
	for (uint i = lane; i < 256; i += 32)
		m[i] = in[i];   // in[i] = i: element (row r, column c) holds 16r + c
	threadgroup_barrier(mem_flags::mem_threadgroup);
	simdgroup_float8x8 a, b;
	simdgroup_load(a, &m[0], 16, ulong2(1, 0));
	simdgroup_load(b, &m[0], 16, ulong2(0, 0), true);
	simdgroup_store(a, &st[0], 8);
	simdgroup_store(b, &st[64], 8);
	threadgroup_barrier(mem_flags::mem_threadgroup);
	float down = simd_shuffle_down(float(lane), 1);
	if (lane == 31)
		out[2] = down;
	if (lane == 0) {
		out[0] = st[0];          // 1 if origin.x counts columns, 16 if rows
		out[1] = st[64 + 1];     // 16 if transpose swaps rows and columns
		out[3] = in[256] * in[257];              // 1e-38 * 1e-3: subnormal or zero
		out[4] = 1e-50 * 1e40 > 0 ? 1.0f : 0.0f; // 1 if the literals are double
	}
}
