// Deterministic sums of a float vector, with no atomics: stage 1
// (reduce_sum, reduce_sum_squares) has threadgroup g add the fixed stretch
// [g·per_group, (g+1)·per_group) of x into partial[g]; stage 2
// (reduce_final) has one threadgroup add the partials in a fixed order. The
// same input and size give the same bits on every run.

#include <metal_stdlib>
using namespace metal;

struct ReduceParams {
	uint n;          // elements of x (stage 1) or partials (stage 2)
	uint per_group;  // stage 1: elements per threadgroup, a multiple of 4
	uint aligned;    // stage 1: x is 16-byte aligned (whole float4 loads)
	uint accumulate; // stage 2: dst[0] += the sum instead of dst[0] = it
};

// Stage 1: Σx or Σx² over this threadgroup's stretch, into partial[group].
template <bool SQUARE>
kernel void reduce_partial(device const float* x [[buffer(0)]],
                           device float* partial [[buffer(1)]],
                           constant ReduceParams& p [[buffer(2)]],
                           uint group [[threadgroup_position_in_grid]],
                           uint tid [[thread_index_in_threadgroup]],
                           uint nthreads [[threads_per_threadgroup]],
                           uint sg [[simdgroup_index_in_threadgroup]],
                           uint lane [[thread_index_in_simdgroup]]) {
	threadgroup float part[32];
	const uint start = group * p.per_group;
	const uint end = min(p.n, start + p.per_group);
	// Each thread adds quads strided by the threadgroup into four lanes.
	float4 acc = float4(0.0f);
	for (uint i = start + 4 * tid; i < end; i += 4 * nthreads) {
		const float4 v = load4(x, i, end, p.aligned != 0);
		acc += SQUARE ? v * v : v;
	}
	float s = simd_sum((acc.x + acc.y) + (acc.z + acc.w));
	if (lane == 0)
		part[sg] = s;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (tid == 0)
		partial[group] = sum_partials(part, (nthreads + 31) / 32);
}

// Stage 2: one threadgroup adds the n partials, each thread a strided
// subset in order, and writes or adds the total to dst[0].
kernel void reduce_final(device const float* partial [[buffer(0)]],
                         device float* dst [[buffer(1)]],
                         constant ReduceParams& p [[buffer(2)]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint nthreads [[threads_per_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
	threadgroup float part[32];
	float s = 0.0f;
	for (uint i = tid; i < p.n; i += nthreads)
		s += partial[i];
	s = simd_sum(s);
	if (lane == 0)
		part[sg] = s;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (tid == 0) {
		const float total = sum_partials(part, (nthreads + 31) / 32);
		dst[0] = p.accumulate ? dst[0] + total : total;
	}
}

template [[host_name("reduce_sum")]] [[kernel]] void reduce_partial<false>(
	device const float* x [[buffer(0)]], device float* partial [[buffer(1)]], constant ReduceParams& p [[buffer(2)]],
	uint group [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
	uint nthreads [[threads_per_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
	uint lane [[thread_index_in_simdgroup]]);
template [[host_name("reduce_sum_squares")]] [[kernel]] void reduce_partial<true>(
	device const float* x [[buffer(0)]], device float* partial [[buffer(1)]], constant ReduceParams& p [[buffer(2)]],
	uint group [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
	uint nthreads [[threads_per_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
	uint lane [[thread_index_in_simdgroup]]);
