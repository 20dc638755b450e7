// Row gathers and scatters by I32 row numbers: embed (out[r,:] =
// table[ids[r],:], the table a stored type widened to float) and set_rows
// (dst[rows[r],:] = src[r,:], the KV-cache write).
//
// A grid of cols (or cols/4 when vec: cols % 4 == 0 and the buffers aligned
// for 4-element loads) by rows threads. Row numbers are device data the host
// cannot check here, so the kernels test them: embed writes a zero row for an
// id outside [0, table_rows), set_rows skips a row number outside
// [0, dst_rows). Neither reads or writes out of bounds.

#include <metal_stdlib>
using namespace metal;

struct EmbedParams {
	uint rows, cols;
	uint table_rows;
	uint vec;
};

template <typename W>
kernel void embed(device const W* table [[buffer(0)]],
                  device const int* ids [[buffer(1)]],
                  device float* out [[buffer(2)]],
                  constant EmbedParams& p [[buffer(3)]],
                  uint2 t [[thread_position_in_grid]]) {
	if (t.y >= p.rows || t.x >= (p.vec ? p.cols / 4 : p.cols))
		return;
	const uint id = uint(ids[t.y]); // a negative id becomes ≥ 2³¹
	const bool ok = id < p.table_rows;
	device float* or_ = out + t.y * p.cols;
	device const W* tr = table + (ok ? id : 0) * p.cols;
	if (p.vec)
		((device float4*)or_)[t.x] = ok ? widen4(((device const vec<W, 4>*)tr)[t.x]) : float4(0.0f);
	else
		or_[t.x] = ok ? widen(tr[t.x]) : 0.0f;
}

template [[host_name("embed_f32")]] [[kernel]] void embed<float>(
	device const float* table [[buffer(0)]], device const int* ids [[buffer(1)]], device float* out [[buffer(2)]],
	constant EmbedParams& p [[buffer(3)]], uint2 t [[thread_position_in_grid]]);
template [[host_name("embed_f16")]] [[kernel]] void embed<half>(
	device const half* table [[buffer(0)]], device const int* ids [[buffer(1)]], device float* out [[buffer(2)]],
	constant EmbedParams& p [[buffer(3)]], uint2 t [[thread_position_in_grid]]);
template [[host_name("embed_bf16")]] [[kernel]] void embed<ushort>(
	device const ushort* table [[buffer(0)]], device const int* ids [[buffer(1)]], device float* out [[buffer(2)]],
	constant EmbedParams& p [[buffer(3)]], uint2 t [[thread_position_in_grid]]);

struct SetRowsParams {
	uint rows, cols;
	uint dst_rows;
	uint vec;
};

// Row numbers are distinct (each cache slot written once); two source rows
// sent to one row race.
kernel void set_rows(device const float* src [[buffer(0)]],
                     device const int* rows [[buffer(1)]],
                     device float* dst [[buffer(2)]],
                     constant SetRowsParams& p [[buffer(3)]],
                     uint2 t [[thread_position_in_grid]]) {
	if (t.y >= p.rows || t.x >= (p.vec ? p.cols / 4 : p.cols))
		return;
	const uint d = uint(rows[t.y]);
	if (d >= p.dst_rows)
		return;
	device const float* sr = src + t.y * p.cols;
	device float* dr = dst + d * p.cols;
	if (p.vec)
		((device float4*)dr)[t.x] = ((device const float4*)sr)[t.x];
	else
		dr[t.x] = sr[t.x];
}
