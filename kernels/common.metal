// Functions shared by every kernel file. The library is compiled as one
// source: this file first, then the others in name order.

#include <metal_stdlib>
using namespace metal;

// widen converts a stored weight to float: bfloat16 is carried as ushort
// bits and widened by a 16-bit shift (exact, and valid on every GPU).
inline float widen(float x) { return x; }
inline float widen(half x) { return float(x); }
inline float widen(ushort bf16) { return as_type<float>(uint(bf16) << 16); }

// widen4 converts four stored weights to float.
inline float4 widen4(float4 x) { return x; }
inline float4 widen4(half4 x) { return float4(x); }
inline float4 widen4(ushort4 bf16) { return as_type<float4>(uint4(bf16) << 16); }

// load4 returns x[i..i+3] with the elements at or past end read as 0; i is a
// multiple of 4. aligned says x is 16-byte aligned, so a whole quad is one
// float4 load.
inline float4 load4(device const float* x, uint i, uint end, bool aligned) {
	if (i + 4 <= end)
		return aligned ? *(device const float4*)(x + i) : float4(x[i], x[i + 1], x[i + 2], x[i + 3]);
	float4 v = float4(0.0f);
	for (uint k = 0; i + k < end; k++)
		v[k] = x[i + k];
	return v;
}

// sum_partials adds the n per-SIMD-group partials of a threadgroup
// reduction in index order, so every thread gets the same bits.
inline float sum_partials(threadgroup const float* part, uint n) {
	float s = 0.0f;
	for (uint i = 0; i < n; i++)
		s += part[i];
	return s;
}
