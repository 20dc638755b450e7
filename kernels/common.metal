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
