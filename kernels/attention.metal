// Causal softmax attention over segments (the meaning of nn.Attention and
// nn.AttentionBackward), float32 throughout.
//
// q and out are rows × heads·D, k and v keyRows × kv_heads·D, all row-major;
// query head h reads key/value head h / (heads / kv_heads). Scores are
// scaled by 1/sqrt(D); the kernels work in base 2: scores are multiplied by
// log2(e) up front, so exp becomes exp2 and lse = (m + log2 l)·ln 2.
//
// The host plans the work (kernels/attention.go) as tables of blocks, one
// entry of uints per threadgroup; each entry carries what the block needs
// of its segment, so the kernels never see the segment list.
//
// A query at position pos (Past + its index in the segment) sees keys
// 0..pos of its segment, only up to keys-1 when the segment has a key count
// (keys > 0: padding, masked as keys only). Every query sees key 0. Running
// maxima start at -FLT_MAX, not -inf, and masked scores are never
// exponentiated, so no infinity enters the arithmetic (fast math assumes
// none).

#include <metal_stdlib>
using namespace metal;

struct AttnParams {
	uint heads, kv_heads;
	uint has_lse;     // write lse (its buffer is bound either way)
	float scale;      // 1/sqrt(D)
	uint group_heads; // decode: query heads per threadgroup, dividing heads/kv_heads
};

// A query block: n queries (n <= 32) from row q0, the first at position pos0,
// keys from row kv on; keys is the segment's key count or 0.
struct QBlock {
	uint q0, n, kv, pos0, keys;
};

// limit returns the last key a query at position pos sees.
inline uint attn_limit(uint pos, uint keys) { return keys > 0 ? min(pos, keys - 1) : pos; }

// ---------------------------------------------------------------------------
// Forward (FlashAttention-2): a threadgroup of 4 SIMD groups takes FQ = 32
// queries of one head; each SIMD group owns 8 of them, holding its Q (scaled)
// and O as 8×8 matrices. For every key block, Kᵀ and V are staged in
// threadgroup memory; S = Q·Kᵀ goes through a per-SIMD-group tile where the
// lanes apply the mask and the online softmax (4 lanes per row), then O is
// rescaled (a product with a diagonal matrix) and O += P·V. Key blocks of
// BK = 32 (16 at D = 128) keep threadgroup memory within 32 KiB.
enum : uint { FQ = 32, F_THREADS = 128 };

template <uint D, uint BK>
kernel void attn_fwd(device const float* q [[buffer(0)]],
                     device const float* k [[buffer(1)]],
                     device const float* v [[buffer(2)]],
                     device float* out [[buffer(3)]],
                     device float* lse [[buffer(4)]],
                     device const QBlock* blocks [[buffer(5)]],
                     constant AttnParams& p [[buffer(6)]],
                     uint2 group [[threadgroup_position_in_grid]],
                     uint tid [[thread_index_in_threadgroup]],
                     uint sg [[simdgroup_index_in_threadgroup]],
                     uint lane [[thread_index_in_simdgroup]]) {
	// Q staging, then Kᵀ (D×BK) and V (BK×D), then the output.
	threadgroup float area[(FQ * D > 2 * BK * D) ? FQ * D : 2 * BK * D];
	threadgroup float s_tile[4 * 8 * BK]; // per SIMD group: 8 rows of S, then P
	threadgroup float diag[4 * 64];       // per SIMD group: the rescale matrix
	threadgroup float inv_l[FQ];

	device const QBlock& b = blocks[group.x];
	const uint h = group.y, g = h / (p.heads / p.kv_heads);
	const uint qc = p.heads * D, kc = p.kv_heads * D;
	const float qscale = p.scale * M_LOG2E_F;
	threadgroup float* st = s_tile + sg * 8 * BK;
	threadgroup float* dg = diag + sg * 64;

	// Stage Q (zero past the block's rows) and load this SIMD group's rows.
	for (uint e = tid; e < FQ * D; e += F_THREADS) {
		uint r = e / D, x = e % D;
		area[e] = r < b.n ? q[(b.q0 + r) * qc + h * D + x] * qscale : 0.0f;
	}
	for (uint e = lane; e < 64; e += 32)
		dg[e] = 0.0f;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	simdgroup_float8x8 qm[D / 8], om[D / 8];
	for (uint x = 0; x < D / 8; x++) {
		simdgroup_load(qm[x], &area[sg * 8 * D + x * 8], D);
		om[x] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
	}

	// Lane layout of the softmax: row r = lane/4, columns lane%4 + 4t.
	const uint r = lane / 4, c0 = lane % 4;
	const uint row = sg * 8 + r;
	const bool live = row < b.n;
	const uint lim = attn_limit(b.pos0 + row, b.keys);
	const uint last = attn_limit(b.pos0 + b.n - 1, b.keys); // the block's last key
	float m = -FLT_MAX, l = 0.0f;

	threadgroup float* kt = area;
	threadgroup float* vt = area + BK * D;
	for (uint j0 = 0; j0 <= last; j0 += BK) {
		threadgroup_barrier(mem_flags::mem_threadgroup);
		for (uint e = tid; e < BK * D; e += F_THREADS) {
			uint j = e / D, x = e % D;
			bool in = j0 + j <= last;
			uint at = (b.kv + j0 + j) * kc + g * D + x;
			kt[x * BK + j] = in ? k[at] : 0.0f;
			vt[e] = in ? v[at] : 0.0f;
		}
		threadgroup_barrier(mem_flags::mem_threadgroup);

		// S = Q·Kᵀ for this SIMD group's 8 rows.
		for (uint c = 0; c < BK / 8; c++) {
			simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f), kb;
			for (uint x = 0; x < D / 8; x++) {
				simdgroup_load(kb, &kt[x * 8 * BK + c * 8], BK);
				simdgroup_multiply_accumulate(acc, qm[x], kb, acc);
			}
			simdgroup_store(acc, &st[c * 8], BK);
		}
		simdgroup_barrier(mem_flags::mem_threadgroup);

		// Online softmax: mask, new maximum, P in place, rescale factor.
		float mx = -FLT_MAX;
		for (uint c = c0; c < BK; c += 4)
			if (live && j0 + c <= lim)
				mx = max(mx, st[r * BK + c]);
		mx = max(mx, simd_shuffle_xor(mx, 1));
		mx = max(mx, simd_shuffle_xor(mx, 2));
		const float mn = max(m, mx);
		float sum = 0.0f;
		for (uint c = c0; c < BK; c += 4) {
			float e = (live && j0 + c <= lim) ? exp2(st[r * BK + c] - mn) : 0.0f;
			st[r * BK + c] = e;
			sum += e;
		}
		sum += simd_shuffle_xor(sum, 1);
		sum += simd_shuffle_xor(sum, 2);
		const float f = m == mn ? 1.0f : exp2(m - mn);
		l = l * f + sum;
		m = mn;
		if (c0 == 0)
			dg[r * 9] = f;
		simdgroup_barrier(mem_flags::mem_threadgroup);

		// O = diag(f)·O + P·V.
		simdgroup_float8x8 fm, pm[BK / 8], vb;
		simdgroup_load(fm, dg, 8);
		for (uint c = 0; c < BK / 8; c++)
			simdgroup_load(pm[c], &st[c * 8], BK);
		for (uint x = 0; x < D / 8; x++) {
			simdgroup_multiply(om[x], fm, om[x]);
			for (uint c = 0; c < BK / 8; c++) {
				simdgroup_load(vb, &vt[c * 8 * D + x * 8], D);
				simdgroup_multiply_accumulate(om[x], pm[c], vb, om[x]);
			}
		}
	}

	// out = O / l through threadgroup memory, rows of the block only.
	if (c0 == 0) {
		inv_l[row] = l > 0.0f ? 1.0f / l : 0.0f;
		if (live && p.has_lse)
			lse[(b.q0 + row) * p.heads + h] = (m + log2(l)) * M_LN2_F;
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);
	for (uint x = 0; x < D / 8; x++)
		simdgroup_store(om[x], &area[sg * 8 * D + x * 8], D);
	simdgroup_barrier(mem_flags::mem_threadgroup);
	for (uint e = lane; e < 8 * D; e += 32) {
		uint rr = sg * 8 + e / D, x = e % D;
		if (rr < b.n)
			out[(b.q0 + rr) * qc + h * D + x] = area[sg * 8 * D + e] * inv_l[rr];
	}
}

#define ATTN_FWD(NAME, D, BK)                                                                                    \
	template [[host_name(NAME)]] [[kernel]] void attn_fwd<D, BK>(                              \
		device const float* q [[buffer(0)]], device const float* k [[buffer(1)]],                         \
		device const float* v [[buffer(2)]], device float* out [[buffer(3)]], device float* lse [[buffer(4)]], \
		device const QBlock* blocks [[buffer(5)]], constant AttnParams& p [[buffer(6)]],                  \
		uint2 group [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],           \
		uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
ATTN_FWD("attn_fwd_d16", 16, 32)
ATTN_FWD("attn_fwd_d32", 32, 32)
ATTN_FWD("attn_fwd_d64", 64, 32)
ATTN_FWD("attn_fwd_d128", 128, 16)

// ---------------------------------------------------------------------------
// Decode: one query row against many keys, split over the keys. Pass one
// takes a chunk of keys of one row for group_heads (at most 8) query heads
// of one key/value head, so each key and value is read once for all of
// them: 4 SIMD groups take every 4th key, each lane holding D/32 elements
// of every head's q and output, one simd_sum per score; the SIMD groups
// merge in threadgroup memory and write each head's (max, sum,
// unnormalised output) for the chunk to scratch. Pass two merges a row's
// chunks in order, so the result does not depend on timing.
enum : uint { DEC_SG = 4, DEC_HEADS = 8 };

// A chunk: keys key0..key1-1 (key1 > key0) from row kv on, for query row
// qrow. Its partial lives in scratch slot (chunk index)·heads + head.
struct DecChunk {
	uint qrow, kv, key0, key1;
};

// A row: its chunks are first..first+count-1.
struct DecRow {
	uint qrow, first, count;
};

template <uint D>
kernel void attn_decode(device const float* q [[buffer(0)]],
                        device const float* k [[buffer(1)]],
                        device const float* v [[buffer(2)]],
                        device float* scratch [[buffer(3)]],
                        device const DecChunk* chunks [[buffer(4)]],
                        constant AttnParams& p [[buffer(5)]],
                        uint2 group [[threadgroup_position_in_grid]],
                        uint sg [[simdgroup_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]]) {
	// Each lane holds E elements; below D = 32 the upper lanes hold none.
	enum : uint { E = (D + 31) / 32 };
	const bool full = D >= 32 || lane * E < D;
	threadgroup float part_m[DEC_SG * DEC_HEADS];
	threadgroup float part_l[DEC_SG * DEC_HEADS];
	threadgroup float part_o[DEC_SG * DEC_HEADS * D];

	device const DecChunk& c = chunks[group.x];
	const uint hn = p.group_heads, h0 = group.y * hn;
	const uint g = h0 / (p.heads / p.kv_heads);
	const uint kc = p.kv_heads * D;
	const float qscale = p.scale * M_LOG2E_F;

	// Lane holds elements lane·E.. of each head's q and output.
	float qv[DEC_HEADS][E], o[DEC_HEADS][E], m[DEC_HEADS], l[DEC_HEADS];
	for (uint t = 0; t < DEC_HEADS; t++) {
		for (uint e = 0; e < E; e++) {
			qv[t][e] = t < hn && full ? q[c.qrow * p.heads * D + (h0 + t) * D + lane * E + e] * qscale : 0.0f;
			o[t][e] = 0.0f;
		}
		m[t] = -FLT_MAX;
		l[t] = 0.0f;
	}
	for (uint j = c.key0 + sg; j < c.key1; j += DEC_SG) {
		float kx[E], vx[E];
		for (uint e = 0; e < E; e++) {
			kx[e] = full ? k[(c.kv + j) * kc + g * D + lane * E + e] : 0.0f;
			vx[e] = full ? v[(c.kv + j) * kc + g * D + lane * E + e] : 0.0f;
		}
		for (uint t = 0; t < DEC_HEADS; t++) {
			if (t >= hn)
				break;
			float s = 0.0f;
			for (uint e = 0; e < E; e++)
				s += qv[t][e] * kx[e];
			s = simd_sum(s);
			const float mn = max(m[t], s);
			const float f = exp2(m[t] - mn), pw = exp2(s - mn);
			l[t] = l[t] * f + pw;
			for (uint e = 0; e < E; e++)
				o[t][e] = o[t][e] * f + pw * vx[e];
			m[t] = mn;
		}
	}
	for (uint t = 0; t < DEC_HEADS; t++) {
		if (lane == 0) {
			part_m[sg * DEC_HEADS + t] = m[t];
			part_l[sg * DEC_HEADS + t] = l[t];
		}
		if (full)
			for (uint e = 0; e < E; e++)
				part_o[(sg * DEC_HEADS + t) * D + lane * E + e] = o[t][e];
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);

	// Merge the SIMD groups, SIMD group sg taking heads sg, sg+4; one that
	// saw no key has m = -FLT_MAX, weight 0.
	for (uint t = sg; t < hn; t += DEC_SG) {
		float mm = part_m[t];
		for (uint s = 1; s < DEC_SG; s++)
			mm = max(mm, part_m[s * DEC_HEADS + t]);
		float w[DEC_SG], ll = 0.0f;
		for (uint s = 0; s < DEC_SG; s++) {
			w[s] = exp2(part_m[s * DEC_HEADS + t] - mm);
			ll += part_l[s * DEC_HEADS + t] * w[s];
		}
		device float* slot = scratch + (group.x * p.heads + h0 + t) * (D + 2);
		if (lane == 0) {
			slot[0] = mm;
			slot[1] = ll;
		}
		for (uint x = lane; x < D; x += 32) {
			float acc = 0.0f;
			for (uint s = 0; s < DEC_SG; s++)
				acc += part_o[(s * DEC_HEADS + t) * D + x] * w[s];
			slot[2 + x] = acc;
		}
	}
}

template <uint D>
kernel void attn_decode_merge(device const float* scratch [[buffer(0)]],
                              device float* out [[buffer(1)]],
                              device float* lse [[buffer(2)]],
                              device const DecRow* rows [[buffer(3)]],
                              constant AttnParams& p [[buffer(4)]],
                              uint2 group [[threadgroup_position_in_grid]],
                              uint lane [[thread_index_in_simdgroup]]) {
	device const DecRow& rw = rows[group.x];
	const uint h = group.y;
	device const float* base = scratch + (rw.first * p.heads + h) * (D + 2);
	const uint stride = p.heads * (D + 2);
	float mm = -FLT_MAX;
	for (uint s = 0; s < rw.count; s++)
		mm = max(mm, base[s * stride]);
	float ll = 0.0f;
	for (uint s = 0; s < rw.count; s++)
		ll += base[s * stride + 1] * exp2(base[s * stride] - mm);
	const float inv = 1.0f / ll;
	for (uint x = lane; x < D; x += 32) {
		float acc = 0.0f;
		for (uint s = 0; s < rw.count; s++)
			acc += base[s * stride + 2 + x] * exp2(base[s * stride] - mm);
		out[rw.qrow * p.heads * D + h * D + x] = acc * inv;
	}
	if (lane == 0 && p.has_lse)
		lse[rw.qrow * p.heads + h] = (mm + log2(ll)) * M_LN2_F;
}

#define ATTN_DECODE(NAME, MERGE, D)                                                                                       \
	template [[host_name(NAME)]] [[kernel]] void attn_decode<D>(                              \
		device const float* q [[buffer(0)]], device const float* k [[buffer(1)]],                           \
		device const float* v [[buffer(2)]], device float* scratch [[buffer(3)]],                           \
		device const DecChunk* chunks [[buffer(4)]], constant AttnParams& p [[buffer(5)]],                  \
		uint2 group [[threadgroup_position_in_grid]], uint sg [[simdgroup_index_in_threadgroup]],           \
		uint lane [[thread_index_in_simdgroup]]);                                                          \
	template [[host_name(MERGE)]] [[kernel]] void attn_decode_merge<D>(                  \
		device const float* scratch [[buffer(0)]], device float* out [[buffer(1)]],                         \
		device float* lse [[buffer(2)]], device const DecRow* rows [[buffer(3)]],                           \
		constant AttnParams& p [[buffer(4)]], uint2 group [[threadgroup_position_in_grid]],                 \
		uint lane [[thread_index_in_simdgroup]]);
ATTN_DECODE("attn_decode_d16", "attn_decode_merge_d16", 16)
ATTN_DECODE("attn_decode_d32", "attn_decode_merge_d32", 32)
ATTN_DECODE("attn_decode_d64", "attn_decode_merge_d64", 64)
ATTN_DECODE("attn_decode_d128", "attn_decode_merge_d128", 128)

// ---------------------------------------------------------------------------
// Backward (FlashAttention-2): probabilities are recomputed from q, k and
// lse, and δ = rowsum(dO∘O); with dS = P∘(dP − δ)·scale,
// dV = Pᵀ·dO, dK = dSᵀ·Q, dQ = dS·K. Two kernels, no atomics: attn_bwd_dq
// over query blocks (the forward's table), attn_bwd_dkv over key blocks,
// each key block summing over the query heads of its key/value head and
// over the query blocks that see it, in a fixed order.

// delta_rows sets dl[r] = rowsum(dO∘O) and ll[r] = lse·log2(e) for the n
// rows of a block of query head h from row q0 (0 for rows past n); SIMD
// group sg of nsg takes rows sg, sg+nsg, ...
template <uint D, uint BQ>
inline void delta_rows(threadgroup float* dl, threadgroup float* ll, device const float* dout,
                       device const float* out, device const float* lse, uint q0, uint n, uint h,
                       uint heads, uint sg, uint nsg, uint lane) {
	for (uint r = sg; r < BQ; r += nsg) {
		float d = 0.0f;
		if (r < n)
			for (uint x = lane; x < D; x += 32) {
				uint at = (q0 + r) * heads * D + h * D + x;
				d += dout[at] * out[at];
			}
		d = simd_sum(d);
		if (lane == 0) {
			dl[r] = d;
			ll[r] = r < n ? lse[(q0 + r) * heads + h] * M_LOG2E_F : 0.0f;
		}
	}
}

// dQ: 4 SIMD groups × 8 queries, holding Q (scaled), dO and dQ as 8×8
// matrices; per key block Kᵀ, Vᵀ and K are staged.
template <uint D, uint BK>
kernel void attn_bwd_dq(device const float* q [[buffer(0)]],
                        device const float* k [[buffer(1)]],
                        device const float* v [[buffer(2)]],
                        device const float* out [[buffer(3)]],
                        device const float* dout [[buffer(4)]],
                        device const float* lse [[buffer(5)]],
                        device float* dq [[buffer(6)]],
                        device const QBlock* blocks [[buffer(7)]],
                        constant AttnParams& p [[buffer(8)]],
                        uint2 group [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sg [[simdgroup_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]]) {
	// Staging of Q and dO, then Kᵀ, Vᵀ (D×BK) and K (BK×D), then dQ.
	threadgroup float area[(FQ * D > 3 * BK * D) ? FQ * D : 3 * BK * D];
	threadgroup float s_tile[4 * 8 * BK];  // per SIMD group: S, then dS
	threadgroup float dp_tile[4 * 8 * BK]; // per SIMD group: dP
	threadgroup float dl[FQ];
	threadgroup float ll[FQ];

	device const QBlock& b = blocks[group.x];
	const uint h = group.y, g = h / (p.heads / p.kv_heads);
	const uint qc = p.heads * D, kc = p.kv_heads * D;
	threadgroup float* st = s_tile + sg * 8 * BK;
	threadgroup float* dpt = dp_tile + sg * 8 * BK;

	delta_rows<D, FQ>(dl, ll, dout, out, lse, b.q0, b.n, h, p.heads, sg, 4, lane);
	simdgroup_float8x8 qm[D / 8], dom[D / 8], dqm[D / 8];
	for (uint pass = 0; pass < 2; pass++) {
		device const float* src = pass == 0 ? q : dout;
		const float sc = pass == 0 ? p.scale * M_LOG2E_F : 1.0f;
		threadgroup_barrier(mem_flags::mem_threadgroup);
		for (uint e = tid; e < FQ * D; e += F_THREADS) {
			uint r = e / D, x = e % D;
			area[e] = r < b.n ? src[(b.q0 + r) * qc + h * D + x] * sc : 0.0f;
		}
		threadgroup_barrier(mem_flags::mem_threadgroup);
		for (uint x = 0; x < D / 8; x++) {
			if (pass == 0)
				simdgroup_load(qm[x], &area[sg * 8 * D + x * 8], D);
			else
				simdgroup_load(dom[x], &area[sg * 8 * D + x * 8], D);
		}
	}
	for (uint x = 0; x < D / 8; x++)
		dqm[x] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

	const uint last = attn_limit(b.pos0 + b.n - 1, b.keys);
	threadgroup float* kt = area;
	threadgroup float* vt = area + BK * D;
	threadgroup float* kr = area + 2 * BK * D;
	for (uint j0 = 0; j0 <= last; j0 += BK) {
		threadgroup_barrier(mem_flags::mem_threadgroup);
		for (uint e = tid; e < BK * D; e += F_THREADS) {
			uint j = e / D, x = e % D;
			bool in = j0 + j <= last;
			uint at = (b.kv + j0 + j) * kc + g * D + x;
			float kx = in ? k[at] : 0.0f;
			kt[x * BK + j] = kx;
			kr[e] = kx;
			vt[x * BK + j] = in ? v[at] : 0.0f;
		}
		threadgroup_barrier(mem_flags::mem_threadgroup);

		// S = Q·Kᵀ and dP = dO·Vᵀ for this SIMD group's rows.
		for (uint c = 0; c < BK / 8; c++) {
			simdgroup_float8x8 s = make_filled_simdgroup_matrix<float, 8, 8>(0.0f), kb;
			simdgroup_float8x8 dp = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
			for (uint x = 0; x < D / 8; x++) {
				simdgroup_load(kb, &kt[x * 8 * BK + c * 8], BK);
				simdgroup_multiply_accumulate(s, qm[x], kb, s);
				simdgroup_load(kb, &vt[x * 8 * BK + c * 8], BK);
				simdgroup_multiply_accumulate(dp, dom[x], kb, dp);
			}
			simdgroup_store(s, &st[c * 8], BK);
			simdgroup_store(dp, &dpt[c * 8], BK);
		}
		simdgroup_barrier(mem_flags::mem_threadgroup);

		// dS = P∘(dP − δ)·scale, 0 where masked.
		for (uint e = lane; e < 8 * BK; e += 32) {
			uint rr = sg * 8 + e / BK, j = j0 + e % BK;
			float ds = 0.0f;
			if (rr < b.n && j <= attn_limit(b.pos0 + rr, b.keys))
				ds = exp2(st[e] - ll[rr]) * (dpt[e] - dl[rr]) * p.scale;
			st[e] = ds;
		}
		simdgroup_barrier(mem_flags::mem_threadgroup);

		// dQ += dS·K.
		simdgroup_float8x8 dsm[BK / 8], kb;
		for (uint c = 0; c < BK / 8; c++)
			simdgroup_load(dsm[c], &st[c * 8], BK);
		for (uint x = 0; x < D / 8; x++)
			for (uint c = 0; c < BK / 8; c++) {
				simdgroup_load(kb, &kr[c * 8 * D + x * 8], D);
				simdgroup_multiply_accumulate(dqm[x], dsm[c], kb, dqm[x]);
			}
	}

	threadgroup_barrier(mem_flags::mem_threadgroup);
	for (uint x = 0; x < D / 8; x++)
		simdgroup_store(dqm[x], &area[sg * 8 * D + x * 8], D);
	simdgroup_barrier(mem_flags::mem_threadgroup);
	for (uint e = lane; e < 8 * D; e += 32) {
		uint rr = sg * 8 + e / D, x = e % D;
		if (rr < b.n)
			dq[(b.q0 + rr) * qc + h * D + x] = area[sg * 8 * D + e];
	}
}

// A key block: n keys (n <= BKV) from row kv0, the first at key index j0
// of a segment whose queries are rows q0..q0+qn-1 at positions past, past+1,
// ...; keys is the segment's key count or 0.
struct KVBlock {
	uint kv0, n, j0, q0, qn, past, keys;
};

// dK, dV: BKV/8 SIMD groups × 8 keys, holding dK and dV as 8×8 matrices;
// Kᵀ and Vᵀ are staged once, Q and dO per block of BQ queries. Each SIMD
// group computes S and dP for its own 8 keys and writes Pᵀ and dSᵀ back
// over them.
template <uint D, uint BKV, uint BQ>
kernel void attn_bwd_dkv(device const float* q [[buffer(0)]],
                         device const float* k [[buffer(1)]],
                         device const float* v [[buffer(2)]],
                         device const float* out [[buffer(3)]],
                         device const float* dout [[buffer(4)]],
                         device const float* lse [[buffer(5)]],
                         device float* dk [[buffer(6)]],
                         device float* dv [[buffer(7)]],
                         device const KVBlock* blocks [[buffer(8)]],
                         constant AttnParams& p [[buffer(9)]],
                         uint2 group [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
	enum : uint { NSG = BKV / 8, NT = 32 * NSG };
	threadgroup float kv_area[2 * D * BKV]; // Kᵀ and Vᵀ (D×BKV), then dK and dV
	threadgroup float qd_area[2 * BQ * D];  // Q and dO (BQ×D)
	threadgroup float s_tile[NSG * BQ * 8];  // per SIMD group: S, then Pᵀ
	threadgroup float dp_tile[NSG * BQ * 8]; // per SIMD group: dP, then dSᵀ
	threadgroup float dl[BQ];
	threadgroup float ll[BQ];

	device const KVBlock& b = blocks[group.x];
	const uint g = group.y, ratio = p.heads / p.kv_heads;
	const uint qc = p.heads * D, kc = p.kv_heads * D;
	const float sc2 = p.scale * M_LOG2E_F;
	threadgroup float* kt = kv_area;
	threadgroup float* vt = kv_area + D * BKV;
	threadgroup float* qt = qd_area;
	threadgroup float* dos = qd_area + BQ * D;
	threadgroup float* st = s_tile + sg * BQ * 8;
	threadgroup float* dpt = dp_tile + sg * BQ * 8;

	for (uint e = tid; e < BKV * D; e += NT) {
		uint j = e / D, x = e % D;
		bool in = j < b.n;
		uint at = (b.kv0 + j) * kc + g * D + x;
		kt[x * BKV + j] = in ? k[at] : 0.0f;
		vt[x * BKV + j] = in ? v[at] : 0.0f;
	}
	simdgroup_float8x8 dkm[D / 8], dvm[D / 8];
	for (uint x = 0; x < D / 8; x++) {
		dkm[x] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
		dvm[x] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
	}

	// The queries that see any key of the block: from position j0 on,
	// none when the block is all padding.
	const uint i_start = b.j0 > b.past ? b.j0 - b.past : 0;
	const uint i_end = (b.keys > 0 && b.j0 >= b.keys) ? 0 : b.qn;
	for (uint h = g * ratio; h < (g + 1) * ratio; h++)
		for (uint i0 = i_start; i0 < i_end; i0 += BQ) {
			const uint n = min(BQ, i_end - i0);
			threadgroup_barrier(mem_flags::mem_threadgroup);
			for (uint e = tid; e < BQ * D; e += NT) {
				uint r = e / D, x = e % D;
				uint at = (b.q0 + i0 + r) * qc + h * D + x;
				qt[e] = r < n ? q[at] : 0.0f;
				dos[e] = r < n ? dout[at] : 0.0f;
			}
			delta_rows<D, BQ>(dl, ll, dout, out, lse, b.q0 + i0, n, h, p.heads, sg, NSG, lane);
			threadgroup_barrier(mem_flags::mem_threadgroup);

			// S = Q·Kᵀ and dP = dO·Vᵀ for this SIMD group's 8 keys.
			for (uint rb = 0; rb < BQ / 8; rb++) {
				simdgroup_float8x8 s = make_filled_simdgroup_matrix<float, 8, 8>(0.0f), a, kb;
				simdgroup_float8x8 dp = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
				for (uint x = 0; x < D / 8; x++) {
					simdgroup_load(kb, &kt[x * 8 * BKV + sg * 8], BKV);
					simdgroup_load(a, &qt[rb * 8 * D + x * 8], D);
					simdgroup_multiply_accumulate(s, a, kb, s);
					simdgroup_load(kb, &vt[x * 8 * BKV + sg * 8], BKV);
					simdgroup_load(a, &dos[rb * 8 * D + x * 8], D);
					simdgroup_multiply_accumulate(dp, a, kb, dp);
				}
				simdgroup_store(s, &st[rb * 64], 8);
				simdgroup_store(dp, &dpt[rb * 64], 8);
			}
			simdgroup_barrier(mem_flags::mem_threadgroup);

			// P and dS, masked, written back transposed (8 keys × BQ).
			enum : uint { PER = BQ * 8 / 32 };
			float pv[PER], dsv[PER];
			for (uint t = 0; t < PER; t++) {
				uint e = lane + 32 * t, r = e / 8, j = b.j0 + sg * 8 + e % 8;
				pv[t] = 0.0f;
				dsv[t] = 0.0f;
				if (r < n && sg * 8 + e % 8 < b.n && j <= attn_limit(b.past + i0 + r, b.keys)) {
					pv[t] = exp2(st[e] * sc2 - ll[r]);
					dsv[t] = pv[t] * (dpt[e] - dl[r]) * p.scale;
				}
			}
			simdgroup_barrier(mem_flags::mem_threadgroup);
			for (uint t = 0; t < PER; t++) {
				uint e = lane + 32 * t, r = e / 8, c = e % 8;
				st[c * BQ + r] = pv[t];
				dpt[c * BQ + r] = dsv[t];
			}
			simdgroup_barrier(mem_flags::mem_threadgroup);

			// dV += Pᵀ·dO, dK += dSᵀ·Q.
			simdgroup_float8x8 pm[BQ / 8], dsm[BQ / 8], b8;
			for (uint rb = 0; rb < BQ / 8; rb++) {
				simdgroup_load(pm[rb], &st[rb * 8], BQ);
				simdgroup_load(dsm[rb], &dpt[rb * 8], BQ);
			}
			for (uint x = 0; x < D / 8; x++)
				for (uint rb = 0; rb < BQ / 8; rb++) {
					simdgroup_load(b8, &dos[rb * 8 * D + x * 8], D);
					simdgroup_multiply_accumulate(dvm[x], pm[rb], b8, dvm[x]);
					simdgroup_load(b8, &qt[rb * 8 * D + x * 8], D);
					simdgroup_multiply_accumulate(dkm[x], dsm[rb], b8, dkm[x]);
				}
		}

	// Write the block's rows of dK and dV (zero for keys no query sees).
	threadgroup_barrier(mem_flags::mem_threadgroup);
	threadgroup float* dks = kv_area;
	threadgroup float* dvs = kv_area + BKV * D;
	for (uint x = 0; x < D / 8; x++) {
		simdgroup_store(dkm[x], &dks[sg * 8 * D + x * 8], D);
		simdgroup_store(dvm[x], &dvs[sg * 8 * D + x * 8], D);
	}
	simdgroup_barrier(mem_flags::mem_threadgroup);
	for (uint e = lane; e < 8 * D; e += 32) {
		uint j = sg * 8 + e / D, x = e % D;
		if (j < b.n) {
			uint at = (b.kv0 + j) * kc + g * D + x;
			dk[at] = dks[sg * 8 * D + e];
			dv[at] = dvs[sg * 8 * D + e];
		}
	}
}

#define ATTN_BWD(DQ, DKV, D, BK, BKV, BQ)                                                                                 \
	template [[host_name(DQ)]] [[kernel]] void attn_bwd_dq<D, BK>(                              \
		device const float* q [[buffer(0)]], device const float* k [[buffer(1)]],                               \
		device const float* v [[buffer(2)]], device const float* out [[buffer(3)]],                             \
		device const float* dout [[buffer(4)]], device const float* lse [[buffer(5)]],                          \
		device float* dq [[buffer(6)]], device const QBlock* blocks [[buffer(7)]],                              \
		constant AttnParams& p [[buffer(8)]], uint2 group [[threadgroup_position_in_grid]],                     \
		uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],                   \
		uint lane [[thread_index_in_simdgroup]]);                                                              \
	template [[host_name(DKV)]] [[kernel]] void attn_bwd_dkv<D, BKV, BQ>(                       \
		device const float* q [[buffer(0)]], device const float* k [[buffer(1)]],                               \
		device const float* v [[buffer(2)]], device const float* out [[buffer(3)]],                             \
		device const float* dout [[buffer(4)]], device const float* lse [[buffer(5)]],                          \
		device float* dk [[buffer(6)]], device float* dv [[buffer(7)]], device const KVBlock* blocks [[buffer(8)]], \
		constant AttnParams& p [[buffer(9)]], uint2 group [[threadgroup_position_in_grid]],                     \
		uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],                   \
		uint lane [[thread_index_in_simdgroup]]);
// Block sizes per head dimension (dQ's key block BK; dK/dV's key block BKV
// and query block BQ): the largest powers of two that keep threadgroup
// memory within 32 KiB. kvBlock in attention.go repeats BKV.
ATTN_BWD("attn_bwd_dq_d16", "attn_bwd_dkv_d16", 16, 32, 32, 32)
ATTN_BWD("attn_bwd_dq_d32", "attn_bwd_dkv_d32", 32, 32, 32, 32)
ATTN_BWD("attn_bwd_dq_d64", "attn_bwd_dkv_d64", 64, 16, 32, 16)
ATTN_BWD("attn_bwd_dq_d128", "attn_bwd_dkv_d128", 128, 16, 16, 8)
