// Matrix multiplication: c = alpha·op(a)·op(b), or c += alpha·op(a)·op(b).
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
	float alpha;
	uint k_split;      // the depth of k each threadgroup layer z covers
	uint vec_a, vec_b; // whether a and b may be read 4 aligned elements at a time
};

// Threadgroup tiles are padded by 4 floats a row (16 bytes), so the rows of
// a tile start in different banks. The threadgroups of a product walk c in
// bands of BAND row tiles, down each column of a band before the next, so
// neighbouring groups share a tile of op(b) (read from memory once per band,
// not once per row tile) while the band's rows of op(a) stay in cache.
enum : uint { PAD = 4, BAND = 8 };

// load4 reads the 4 stored elements from x[line*ld + at] on, widened to
// float: one vector load where wide allows and all 4 lie before limit,
// else element by element, with 0 for those at or past limit and for a
// line at or past lines.
template <typename T>
inline float4 load4(device const T* x, uint ld, uint line, uint at, uint lines, uint limit, bool wide) {
	if (line >= lines)
		return float4(0.0f);
	device const T* src = x + line * ld + at;
	if (wide && at + 4 <= limit)
		return widen4(*(device const vec<T, 4>*)src);
	float f[4] = {0.0f, 0.0f, 0.0f, 0.0f};
	for (uint e = 0; e < 4 && at + e < limit; e++)
		f[e] = widen(src[e]);
	return float4(f[0], f[1], f[2], f[3]);
}

// stage copies the R×C window at (r0, c0) of a rows×cols matrix X into tile
// (LD floats a row), zero past the matrix's edges. Element (i, j) of X is
// x[i*ld + j], or x[j*ld + i] when trans. Each thread takes 4 neighbouring
// stored elements at a time, so neighbouring threads read neighbouring
// addresses.
template <uint R, uint C, uint LD, uint THREADS, typename T>
inline void stage(threadgroup float* tile, device const T* x, uint ld, bool trans, bool wide,
                  uint r0, uint c0, uint rows, uint cols, uint tid) {
	if (!trans) {
		for (uint v = tid; v < R * C / 4; v += THREADS) {
			const uint i = v / (C / 4), j = v % (C / 4) * 4;
			const float4 f = load4(x, ld, r0 + i, c0 + j, rows, cols, wide);
			threadgroup float* t = &tile[i * LD + j];
			t[0] = f.x;
			t[1] = f.y;
			t[2] = f.z;
			t[3] = f.w;
		}
	} else {
		for (uint v = tid; v < R * C / 4; v += THREADS) {
			const uint i = v % (R / 4) * 4, j = v / (R / 4);
			const float4 f = load4(x, ld, c0 + j, r0 + i, cols, rows, wide);
			threadgroup float* t = &tile[i * LD + j];
			t[0] = f.x;
			t[LD] = f.y;
			t[2 * LD] = f.z;
			t[3 * LD] = f.w;
		}
	}
}

// matmul: a threadgroup of WM×WN SIMD groups computes a BM×BN block of c,
// stepping through k BK at a time; each SIMD group computes a
// (BM/WM)×(BN/WN) part as 8×8 matrices. The grid's x counts the tiles of
// c (in band order), its z the split-K layers: layer z covers k from
// z·k_split; with more than one layer each writes its own m×n slice of c
// (the split-K partials, summed by matmul_reduce).
template <typename W, uint BM, uint BN, uint BK, uint WM, uint WN>
kernel void matmul(device const float* a [[buffer(0)]],
                   device const W* b [[buffer(1)]],
                   device float* c [[buffer(2)]],
                   constant MatMulParams& p [[buffer(3)]],
                   uint3 group [[threadgroup_position_in_grid]],
                   uint tid [[thread_index_in_threadgroup]],
                   uint sg [[simdgroup_index_in_threadgroup]],
                   uint lane [[thread_index_in_simdgroup]]) {
	enum : uint { THREADS = 32 * WM * WN, SM = BM / WM, SN = BN / WN, FM = SM / 8, FN = SN / 8 };
	enum : uint { LDA = BK + PAD, LDB = BN + PAD };
	threadgroup float a_tile[BM * LDA]; // op(a), BM×BK
	threadgroup float b_tile[BK * LDB]; // op(b), BK×BN
	threadgroup float frag[WM * WN * 64]; // one 8×8 matrix per SIMD group, for the epilogue

	const uint m = p.m, n = p.n, k = p.k;
	const uint tiles_m = (m + BM - 1) / BM, tiles_n = (n + BN - 1) / BN;
	const uint band = group.x / (BAND * tiles_n), in_band = group.x % (BAND * tiles_n);
	const uint band_rows = min(uint(BAND), tiles_m - band * BAND);
	const uint row0 = (band * BAND + in_band % band_rows) * BM, col0 = in_band / band_rows * BN;
	const uint sm = (sg / WN) * SM, sn = (sg % WN) * SN;
	const uint k_begin = group.z * p.k_split, k_end = min(k, k_begin + p.k_split);

	simdgroup_float8x8 acc[FM][FN];
	for (uint i = 0; i < FM; i++)
		for (uint j = 0; j < FN; j++)
			acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

	for (uint k0 = k_begin; k0 < k_end; k0 += BK) {
		stage<BM, BK, LDA, THREADS>(a_tile, a, p.trans_a ? m : k, p.trans_a, p.vec_a, row0, k0, m, k_end, tid);
		stage<BK, BN, LDB, THREADS>(b_tile, b, p.trans_b ? k : n, p.trans_b, p.vec_b, k0, col0, k_end, n, tid);
		threadgroup_barrier(mem_flags::mem_threadgroup);

		for (uint kk = 0; kk < BK; kk += 8) {
			simdgroup_float8x8 ma[FM], mb[FN];
			for (uint i = 0; i < FM; i++)
				simdgroup_load(ma[i], &a_tile[(sm + i * 8) * LDA + kk], LDA);
			for (uint j = 0; j < FN; j++)
				simdgroup_load(mb[j], &b_tile[kk * LDB + sn + j * 8], LDB);
			for (uint i = 0; i < FM; i++)
				for (uint j = 0; j < FN; j++)
					simdgroup_multiply_accumulate(acc[i][j], ma[i], mb[j], acc[i][j]);
		}
		threadgroup_barrier(mem_flags::mem_threadgroup);
	}

	// Epilogue. A plain store of a whole 8×8 matrix goes straight to c;
	// scaling, accumulating and the ragged edges go element by element
	// through the SIMD group's 8×8 of threadgroup memory.
	device float* out = c + group.z * m * n;
	threadgroup float* buf = &frag[sg * 64];
	const bool plain = p.alpha == 1.0f && !p.accumulate;
	for (uint i = 0; i < FM; i++) {
		for (uint j = 0; j < FN; j++) {
			const uint r = row0 + sm + i * 8, s = col0 + sn + j * 8;
			if (r >= m || s >= n)
				continue;
			if (plain && r + 8 <= m && s + 8 <= n) {
				simdgroup_store(acc[i][j], out + r * n + s, n);
				continue;
			}
			simdgroup_store(acc[i][j], buf, 8);
			simdgroup_barrier(mem_flags::mem_threadgroup);
			for (uint e = lane; e < 64; e += 32) {
				const uint gi = r + e / 8, gj = s + e % 8;
				if (gi < m && gj < n) {
					const float v = p.alpha * buf[e];
					out[gi * n + gj] = p.accumulate ? out[gi * n + gj] + v : v;
				}
			}
			simdgroup_barrier(mem_flags::mem_threadgroup);
		}
	}
}

// The instantiations: matmul_<BM>x<BN>_<type>. 64x64 (2×2 SIMD groups of
// 32×32) for large products, 32x32 (2×2 of 16×16) for smaller ones, 64x16
// (4×1) for a narrow c, 16x64 (1×4) for a short one.
#define MATMUL(name, W, BM, BN, BK, WM, WN)                                                                      \
	template [[host_name(name)]] [[kernel]] void matmul<W, BM, BN, BK, WM, WN>(                              \
		device const float* a [[buffer(0)]], device const W* b [[buffer(1)]], device float* c [[buffer(2)]], \
		constant MatMulParams& p [[buffer(3)]], uint3 group [[threadgroup_position_in_grid]],               \
		uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],              \
		uint lane [[thread_index_in_simdgroup]]);

MATMUL("matmul_64x64_f32", float, 64, 64, 16, 2, 2)
MATMUL("matmul_64x64_f16", half, 64, 64, 16, 2, 2)
MATMUL("matmul_64x64_bf16", ushort, 64, 64, 16, 2, 2)
MATMUL("matmul_32x32_f32", float, 32, 32, 32, 2, 2)
MATMUL("matmul_32x32_f16", half, 32, 32, 32, 2, 2)
MATMUL("matmul_32x32_bf16", ushort, 32, 32, 32, 2, 2)
MATMUL("matmul_64x16_f32", float, 64, 16, 32, 4, 1)
MATMUL("matmul_64x16_f16", half, 64, 16, 32, 4, 1)
MATMUL("matmul_64x16_bf16", ushort, 64, 16, 32, 4, 1)
MATMUL("matmul_16x64_f32", float, 16, 64, 32, 1, 4)
MATMUL("matmul_16x64_f16", half, 16, 64, 32, 1, 4)
MATMUL("matmul_16x64_bf16", ushort, 16, 64, 32, 1, 4)

// matmul_reduce sums the split-K partials in order (so the result does not
// depend on timing): c = alpha·Σ_z part[z], or c += that.
struct MatMulReduceParams {
	uint count, splits; // elements of c, partial slices
	float alpha;
	uint accumulate;
};

kernel void matmul_reduce(device const float* part [[buffer(0)]],
                          device float* c [[buffer(1)]],
                          constant MatMulReduceParams& p [[buffer(2)]],
                          uint i [[thread_position_in_grid]]) {
	if (i >= p.count)
		return;
	float s = 0.0f;
	for (uint z = 0; z < p.splits; z++)
		s += part[z * p.count + i];
	const float v = p.alpha * s;
	c[i] = p.accumulate ? c[i] + v : v;
}

// Matrix-vector products for a few rows of activations: y = alpha·x·op(b),
// or y += that; x has rows of k elements, y rows of n.

// matvec_t: b is n×k (trans_b). One SIMD group per output column and up to
// MV_ROWS rows of x (threadgroup row y takes rows from y·MV_ROWS), so each
// weight row is read once for them: the lanes stride along it and simd_sum
// combines them. 8 SIMD groups per threadgroup.
enum : uint { MV_COLS = 8, MV_ROWS = 8 };

template <typename W>
kernel void matvec_t(device const float* x [[buffer(0)]],
                     device const W* b [[buffer(1)]],
                     device float* y [[buffer(2)]],
                     constant MatMulParams& p [[buffer(3)]],
                     uint2 group [[threadgroup_position_in_grid]],
                     uint sg [[simdgroup_index_in_threadgroup]],
                     uint lane [[thread_index_in_simdgroup]]) {
	const uint j = group.x * MV_COLS + sg, r0 = group.y * MV_ROWS;
	if (j >= p.n)
		return;
	const uint k = p.k, rows = min(uint(MV_ROWS), p.m - r0);
	device const W* row = b + j * k;
	device const float* xr = x + r0 * k;
	float s[MV_ROWS];
	for (uint r = 0; r < MV_ROWS; r++)
		s[r] = 0.0f;
	if (p.vec_a && p.vec_b) {
		// Four weights per load; k is a multiple of 4, so every row stays
		// 4-element aligned.
		device const vec<W, 4>* row4 = (device const vec<W, 4>*)row;
		device const float4* x4 = (device const float4*)xr;
		for (uint q = lane; q < k / 4; q += 32) {
			const float4 w = widen4(row4[q]);
			for (uint r = 0; r < MV_ROWS; r++)
				if (r < rows)
					s[r] += dot(x4[r * (k / 4) + q], w);
		}
	} else {
		for (uint q = lane; q < k; q += 32) {
			const float w = widen(row[q]);
			for (uint r = 0; r < MV_ROWS; r++)
				if (r < rows)
					s[r] += xr[r * k + q] * w;
		}
	}
	for (uint r = 0; r < rows; r++) {
		const float t = simd_sum(s[r]);
		if (lane == 0) {
			device float* o = y + (r0 + r) * p.n + j;
			*o = p.accumulate ? *o + p.alpha * t : p.alpha * t;
		}
	}
}

// matvec_n: one row, b is k×n. One thread per output, neighbours reading
// neighbouring weights.
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
	y[j] = p.accumulate ? y[j] + p.alpha * s : p.alpha * s;
}

#define MATVEC(tname, nname, W)                                                                                  \
	template [[host_name(tname)]] [[kernel]] void matvec_t<W>(                                        \
		device const float* x [[buffer(0)]], device const W* b [[buffer(1)]], device float* y [[buffer(2)]], \
		constant MatMulParams& p [[buffer(3)]], uint2 group [[threadgroup_position_in_grid]],               \
		uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);               \
	template [[host_name(nname)]] [[kernel]] void matvec_n<W>(                                        \
		device const float* x [[buffer(0)]], device const W* b [[buffer(1)]], device float* y [[buffer(2)]], \
		constant MatMulParams& p [[buffer(3)]], uint j [[thread_position_in_grid]]);

MATVEC("matvec_t_f32", "matvec_n_f32", float)
MATVEC("matvec_t_f16", "matvec_n_f16", half)
MATVEC("matvec_t_bf16", "matvec_n_bf16", ushort)
