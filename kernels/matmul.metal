// Matrix multiplication: c = op(a)·op(b), or c += op(a)·op(b).
//
// c is m×n, op(a) is m×k, op(b) is k×n, all row-major; a is stored k×m when
// trans_a is set, b is stored n×k when trans_b is set (a linear layer's
// weight [out, in]). Activations a and c are float; the weights b are float,
// half, or bfloat16 carried as ushort bits and widened by a 16-bit shift.
// Accumulation is in float.

#include <metal_stdlib>
using namespace metal;

struct MatMulParams {
	uint m, n, k;
	uint trans_a, trans_b, accumulate;
};

// Tiles: a threadgroup of 128 threads (4 SIMD groups, 2×2) computes a
// 32×32 block of c; each SIMD group computes 16×16 as 2×2 8×8 matrices.
enum : uint { TM = 32, TN = 32, TK = 32, MM_THREADS = 128 };

template <typename W>
kernel void matmul(device const float* a [[buffer(0)]],
                   device const W* b [[buffer(1)]],
                   device float* c [[buffer(2)]],
                   constant MatMulParams& p [[buffer(3)]],
                   uint2 group [[threadgroup_position_in_grid]],
                   uint tid [[thread_index_in_threadgroup]],
                   uint sg [[simdgroup_index_in_threadgroup]]) {
	threadgroup float a_tile[TM * TK];   // op(a) tile, row-major
	threadgroup float b_tile[TK * TN];   // op(b) tile, row-major
	threadgroup float c_tile[TM * TN];   // the result, before the ragged-edge store

	const uint m = p.m, n = p.n, k = p.k;
	const bool trans_a = p.trans_a, trans_b = p.trans_b;
	const uint row0 = group.y * TM, col0 = group.x * TN;
	const uint sm = (sg / 2) * 16, sn = (sg % 2) * 16;

	simdgroup_float8x8 acc[2][2], ma[2], mb[2];
	for (uint i = 0; i < 2; i++)
		for (uint j = 0; j < 2; j++)
			acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

	for (uint k0 = 0; k0 < k; k0 += TK) {
		// Stage the tiles, zero-padded past the edges. The index order
		// follows the storage order so neighbouring threads read
		// neighbouring addresses.
		for (uint e = tid; e < TM * TK; e += MM_THREADS) {
			uint r = trans_a ? e % TM : e / TK;
			uint q = trans_a ? e / TM : e % TK;
			uint gi = row0 + r, gq = k0 + q;
			float v = 0.0f;
			if (gi < m && gq < k)
				v = trans_a ? a[gq * m + gi] : a[gi * k + gq];
			a_tile[r * TK + q] = v;
		}
		for (uint e = tid; e < TK * TN; e += MM_THREADS) {
			uint q = trans_b ? e % TK : e / TN;
			uint s = trans_b ? e / TK : e % TN;
			uint gq = k0 + q, gj = col0 + s;
			float v = 0.0f;
			if (gq < k && gj < n)
				v = widen(trans_b ? b[gj * k + gq] : b[gq * n + gj]);
			b_tile[q * TN + s] = v;
		}
		threadgroup_barrier(mem_flags::mem_threadgroup);

		for (uint kk = 0; kk < TK; kk += 8) {
			for (uint i = 0; i < 2; i++)
				simdgroup_load(ma[i], &a_tile[(sm + i * 8) * TK + kk], TK);
			for (uint j = 0; j < 2; j++)
				simdgroup_load(mb[j], &b_tile[kk * TN + sn + j * 8], TN);
			for (uint i = 0; i < 2; i++)
				for (uint j = 0; j < 2; j++)
					simdgroup_multiply_accumulate(acc[i][j], ma[i], mb[j], acc[i][j]);
		}
		threadgroup_barrier(mem_flags::mem_threadgroup);
	}

	for (uint i = 0; i < 2; i++)
		for (uint j = 0; j < 2; j++)
			simdgroup_store(acc[i][j], &c_tile[(sm + i * 8) * TN + sn + j * 8], TN);
	threadgroup_barrier(mem_flags::mem_threadgroup);

	for (uint e = tid; e < TM * TN; e += MM_THREADS) {
		uint r = e / TN, s = e % TN;
		uint gi = row0 + r, gj = col0 + s;
		if (gi < m && gj < n) {
			float v = c_tile[r * TN + s];
			c[gi * n + gj] = p.accumulate ? c[gi * n + gj] + v : v;
		}
	}
}

template [[host_name("matmul_f32")]] [[kernel]] void matmul<float>(
	device const float* a [[buffer(0)]], device const float* b [[buffer(1)]], device float* c [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint2 group [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);
template [[host_name("matmul_f16")]] [[kernel]] void matmul<half>(
	device const float* a [[buffer(0)]], device const half* b [[buffer(1)]], device float* c [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint2 group [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);
template [[host_name("matmul_bf16")]] [[kernel]] void matmul<ushort>(
	device const float* a [[buffer(0)]], device const ushort* b [[buffer(1)]], device float* c [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint2 group [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);

// Matrix-vector products for one row of activations: y = x·op(b), or
// y += x·op(b); x has k elements, y has n.

// matvec_t: b is n×k (trans_b). One SIMD group per output: the lanes stride
// along the weight row and simd_sum combines them. 8 SIMD groups per
// threadgroup.
enum : uint { MV_ROWS = 8 };

template <typename W>
kernel void matvec_t(device const float* x [[buffer(0)]],
                     device const W* b [[buffer(1)]],
                     device float* y [[buffer(2)]],
                     constant MatMulParams& p [[buffer(3)]],
                     uint group [[threadgroup_position_in_grid]],
                     uint sg [[simdgroup_index_in_threadgroup]],
                     uint lane [[thread_index_in_simdgroup]]) {
	const uint j = group * MV_ROWS + sg;
	if (j >= p.n)
		return;
	device const W* row = b + j * p.k;
	float s = 0.0f;
	if (p.k % 4 == 0) {
		// Four weights per load; the rows then stay 4-element aligned.
		device const vec<W, 4>* row4 = (device const vec<W, 4>*)row;
		device const float4* x4 = (device const float4*)x;
		for (uint q = lane; q < p.k / 4; q += 32)
			s += dot(x4[q], widen4(row4[q]));
	} else {
		for (uint q = lane; q < p.k; q += 32)
			s += x[q] * widen(row[q]);
	}
	s = simd_sum(s);
	if (lane == 0)
		y[j] = p.accumulate ? y[j] + s : s;
}

// matvec_n: b is k×n. One thread per output, neighbours reading neighbouring
// weights.
template <typename W>
kernel void matvec_n(device const float* x [[buffer(0)]],
                     device const W* b [[buffer(1)]],
                     device float* y [[buffer(2)]],
                     constant MatMulParams& p [[buffer(3)]],
                     uint j [[thread_position_in_grid]]) {
	if (j >= p.n)
		return;
	float s = 0.0f;
	for (uint q = 0; q < p.k; q++)
		s += x[q] * widen(b[q * p.n + j]);
	y[j] = p.accumulate ? y[j] + s : s;
}

template [[host_name("matvec_t_f32")]] [[kernel]] void matvec_t<float>(
	device const float* x [[buffer(0)]], device const float* b [[buffer(1)]], device float* y [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint group [[threadgroup_position_in_grid]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matvec_t_f16")]] [[kernel]] void matvec_t<half>(
	device const float* x [[buffer(0)]], device const half* b [[buffer(1)]], device float* y [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint group [[threadgroup_position_in_grid]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matvec_t_bf16")]] [[kernel]] void matvec_t<ushort>(
	device const float* x [[buffer(0)]], device const ushort* b [[buffer(1)]], device float* y [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint group [[threadgroup_position_in_grid]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matvec_n_f32")]] [[kernel]] void matvec_n<float>(
	device const float* x [[buffer(0)]], device const float* b [[buffer(1)]], device float* y [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint j [[thread_position_in_grid]]);
template [[host_name("matvec_n_f16")]] [[kernel]] void matvec_n<half>(
	device const float* x [[buffer(0)]], device const half* b [[buffer(1)]], device float* y [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint j [[thread_position_in_grid]]);
template [[host_name("matvec_n_bf16")]] [[kernel]] void matvec_n<ushort>(
	device const float* x [[buffer(0)]], device const ushort* b [[buffer(1)]], device float* y [[buffer(2)]],
	constant MatMulParams& p [[buffer(3)]], uint j [[thread_position_in_grid]]);
