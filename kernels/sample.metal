// Token sampling, one threadgroup per row of logits, as cpu.Sample does it.
// Temperature 0 is greedy: the first index of the row's max. Otherwise the
// weights are w_i = exp((l_i − max)/temperature) in float and W = Σw_i; the
// candidates are the tokens weighing at least τ, the largest weight value
// whose tokens at or above it carry topP·W or more, found by a search over
// the bit patterns of positive floats (ordered as the floats are) that
// splits its interval 16 ways per pass over the row; the token drawn is the
// first candidate, in index order, at which the running sum of candidate
// weights reaches u·(their total), found by a prefix sum over contiguous
// chunks, one per thread.

#include <metal_stdlib>
using namespace metal;

struct SampleParams {
	uint rows, cols;
	float temperature, top_p;
};

// SAMPLE_NONE marks "no index"; SAMPLE_SPLITS is how many thresholds a
// step of the search for τ measures.
enum : uint { SAMPLE_NONE = 0xffffffffu, SAMPLE_SPLITS = 15 };

// sample_weight is a token's weight, computed as cpu.Sample computes it.
inline float sample_weight(float logit, float mx, float temperature) { return exp((logit - mx) / temperature); }

// Threads per threadgroup: a multiple of 32 up to 1024.
kernel void sample(device const float* logits [[buffer(0)]],
                   device const float* u [[buffer(1)]],
                   device int* ids [[buffer(2)]],
                   constant SampleParams& p [[buffer(3)]],
                   uint row [[threadgroup_position_in_grid]],
                   uint tid [[thread_index_in_threadgroup]],
                   uint nthreads [[threads_per_threadgroup]],
                   uint sg [[simdgroup_index_in_threadgroup]],
                   uint lane [[thread_index_in_simdgroup]]) {
	threadgroup float part[64 * SAMPLE_SPLITS]; // two halves, for alternate steps
	threadgroup float walk_part[32]; // the walk's SIMD-group totals, apart from the search's
	threadgroup uint part_idx[32];
	threadgroup int part_last[32];
	device const float* lr = logits + row * p.cols;
	const uint nsg = (nthreads + 31) / 32;

	// The max and its first index: each thread's over its strided logits,
	// the SIMD group's, then the row's from the SIMD groups'.
	float best = -INFINITY;
	uint at = SAMPLE_NONE;
	for (uint i = tid; i < p.cols; i += nthreads) {
		const float v = lr[i];
		if (v > best || at == SAMPLE_NONE) {
			best = v;
			at = i;
		}
	}
	const float sg_best = simd_max(best);
	const uint sg_at = simd_min(best == sg_best ? at : SAMPLE_NONE);
	if (lane == 0) {
		part[sg] = sg_best;
		part_idx[sg] = sg_at;
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);
	float mx = part[0];
	uint argmax = part_idx[0];
	for (uint k = 1; k < nsg; k++) {
		if (part[k] > mx || (part[k] == mx && part_idx[k] < argmax)) {
			mx = part[k];
			argmax = part_idx[k];
		}
	}
	if (p.temperature == 0.0f) {
		if (tid == 0)
			ids[row] = int(argmax);
		return;
	}
	const float temp = p.temperature;

	// W, the total weight.
	float total_w = 0.0f;
	for (uint i = tid; i < p.cols; i += nthreads)
		total_w += sample_weight(lr[i], mx, temp);
	total_w = simd_sum(total_w);
	if (lane == 0)
		part[32 * SAMPLE_SPLITS + sg] = total_w;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	const float mass = p.top_p * sum_partials(part + 32 * SAMPLE_SPLITS, nsg);

	// τ: the largest bit pattern lo whose mass f(lo) = Σ_{w ≥ lo} w reaches
	// topP·W, keeping f(lo) ≥ topP·W > f(hi): f(0) = W, and weights are at
	// most 1, so the pattern just above 1 carries nothing. Each step
	// measures f at SAMPLE_SPLITS points splitting (lo, hi) evenly, one
	// threadgroup sum each, and keeps the part where f crosses topP·W. A
	// step writes its partials in one half of part, alternating, which no
	// thread still reads: the previous step's barrier is behind every
	// thread (the first step writes the half W's did not use).
	uint lo = 0, hi = as_type<uint>(1.0f) + 1;
	const bool nucleus = p.top_p > 0.0f && p.top_p < 1.0f;
	for (uint step = 0; nucleus && hi - lo > 1; step++) {
		const uint stride = max(1u, (hi - lo) / (SAMPLE_SPLITS + 1));
		uint at[SAMPLE_SPLITS];
		float f[SAMPLE_SPLITS];
		for (uint k = 0; k < SAMPLE_SPLITS; k++) {
			at[k] = min(hi - 1, lo + stride * (k + 1));
			f[k] = 0.0f;
		}
		for (uint i = tid; i < p.cols; i += nthreads) {
			const float w = sample_weight(lr[i], mx, temp);
			for (uint k = 0; k < SAMPLE_SPLITS; k++)
				f[k] += w >= as_type<float>(at[k]) ? w : 0.0f;
		}
		threadgroup float* half_ = part + 32 * SAMPLE_SPLITS * (step & 1);
		for (uint k = 0; k < SAMPLE_SPLITS; k++) {
			const float t = simd_sum(f[k]);
			if (lane == 0)
				half_[32 * k + sg] = t;
		}
		threadgroup_barrier(mem_flags::mem_threadgroup);
		uint new_lo = lo, new_hi = hi;
		for (uint k = 0; k < SAMPLE_SPLITS; k++) {
			if (sum_partials(half_ + 32 * k, nsg) >= mass) {
				new_lo = at[k];
			} else {
				new_hi = at[k];
				break;
			}
		}
		lo = new_lo;
		hi = new_hi;
	}
	const float tau = as_type<float>(lo);

	// The walk: each thread's contiguous chunk's candidate weight, the
	// exclusive prefix over threads, then each thread looks in its chunk
	// for the first candidate where the running sum reaches u·(total).
	const uint chunk = (p.cols + nthreads - 1) / nthreads;
	const uint begin = min(p.cols, tid * chunk), end = min(p.cols, begin + chunk);
	float own = 0.0f;
	for (uint i = begin; i < end; i++) {
		const float w = sample_weight(lr[i], mx, temp);
		own += w >= tau ? w : 0.0f;
	}
	const float before_in_sg = simd_prefix_exclusive_sum(own);
	const float sg_total = simd_sum(own);
	if (lane == 0)
		walk_part[sg] = sg_total;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	float run = 0.0f, total = 0.0f;
	for (uint k = 0; k < nsg; k++) {
		if (k == sg)
			run = total;
		total += walk_part[k];
	}
	run += before_in_sg;
	const float target = u[row] * total;
	uint found = SAMPLE_NONE;
	int last = -1;
	for (uint i = begin; i < end; i++) {
		const float w = sample_weight(lr[i], mx, temp);
		if (w < tau)
			continue;
		run += w;
		last = int(i);
		if (run >= target) {
			found = i;
			break;
		}
	}
	// A thread that stops at its crossing leaves last short, but then the
	// last candidate is not needed: it stands in only when rounding leaves
	// every running sum short of the target.
	found = simd_min(found);
	last = simd_max(last);
	if (lane == 0) {
		part_idx[sg] = found;
		part_last[sg] = last;
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (tid == 0) {
		uint first = SAMPLE_NONE;
		int final_ = -1;
		for (uint k = 0; k < nsg; k++) {
			first = min(first, part_idx[k]);
			final_ = max(final_, part_last[k]);
		}
		ids[row] = first != SAMPLE_NONE ? int(first) : final_;
	}
}
