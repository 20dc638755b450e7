// Rotary position embedding, in place, in transformers' rotate_half layout:
// in every head (head_dim wide) of row r, the pair (x[i], x[i + head_dim/2])
// turns by the angle of table row pos[r], column i. The table row holds
// head_dim/2 cosines then head_dim/2 sines (nn.RopeTable), so the kernel
// computes no transcendental: it is two products and a sum per output.
// inverse turns the other way (the rotation's gradient).
//
// A grid of cols/2 pairs (or cols/8 quads of pairs when vec: head_dim % 8
// == 0 and the buffers 16-byte aligned) by rows threads. A row whose
// position is outside [0, positions) is left as it is: positions are device
// data, and the table must not be read out of bounds.

#include <metal_stdlib>
using namespace metal;

struct RoPEParams {
	uint rows, cols, head_dim;
	uint positions; // table rows
	uint inverse;
	uint vec;
};

kernel void rope(device float* x [[buffer(0)]],
                 device const float* table [[buffer(1)]],
                 device const int* pos [[buffer(2)]],
                 constant RoPEParams& p [[buffer(3)]],
                 uint2 t [[thread_position_in_grid]]) {
	const uint half_dim = p.head_dim / 2;
	if (t.y >= p.rows || t.x >= (p.vec ? p.cols / 8 : p.cols / 2))
		return;
	const uint q = uint(pos[t.y]); // a negative position becomes ≥ 2³¹
	if (q >= p.positions)
		return;
	// Pair k of the row: head k / half_dim, column i = k % half_dim.
	const uint k = p.vec ? 4 * t.x : t.x;
	const uint i = k % half_dim;
	device float* a = x + t.y * p.cols + (k / half_dim) * p.head_dim + i;
	device float* b = a + half_dim;
	device const float* c = table + q * p.head_dim + i;
	device const float* s = c + half_dim;
	if (p.vec) {
		float4 av = *(device float4*)a, bv = *(device float4*)b;
		float4 cv = *(device const float4*)c, sv = *(device const float4*)s;
		if (p.inverse)
			sv = -sv;
		*(device float4*)a = av * cv - bv * sv;
		*(device float4*)b = bv * cv + av * sv;
	} else {
		float av = *a, bv = *b, cv = *c, sv = p.inverse ? -*s : *s;
		*a = av * cv - bv * sv;
		*b = bv * cv + av * sv;
	}
}
