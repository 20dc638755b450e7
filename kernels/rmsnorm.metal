// RMSNorm forward: out[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) * weight,
// one threadgroup per row, the mean square accumulated in float. The weight
// is float, half, or bfloat16 carried as ushort bits (common.metal).

#include <metal_stdlib>
using namespace metal;

struct RMSNormParams {
	uint rows, cols;
	float eps;
};

// Threads per threadgroup: a multiple of 32, at most 1024.
template <typename W>
kernel void rmsnorm(device const float* x [[buffer(0)]],
                    device const W* weight [[buffer(1)]],
                    device float* out [[buffer(2)]],
                    constant RMSNormParams& p [[buffer(3)]],
                    uint row [[threadgroup_position_in_grid]],
                    uint tid [[thread_index_in_threadgroup]],
                    uint nthreads [[threads_per_threadgroup]],
                    uint sg [[simdgroup_index_in_threadgroup]],
                    uint lane [[thread_index_in_simdgroup]]) {
	threadgroup float partial[32];
	device const float* xr = x + row * p.cols;
	device float* or_ = out + row * p.cols;

	float ss = 0.0f;
	for (uint i = tid; i < p.cols; i += nthreads)
		ss += xr[i] * xr[i];
	ss = simd_sum(ss);
	if (lane == 0)
		partial[sg] = ss;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (sg == 0) {
		float t = lane < nthreads / 32 ? partial[lane] : 0.0f;
		t = simd_sum(t);
		if (lane == 0)
			partial[0] = t;
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);
	const float inv = 1.0f / sqrt(partial[0] / float(p.cols) + p.eps);

	for (uint i = tid; i < p.cols; i += nthreads)
		or_[i] = widen(weight[i]) * (xr[i] * inv);
}

template [[host_name("rmsnorm_f32")]] [[kernel]] void rmsnorm<float>(
	device const float* x [[buffer(0)]], device const float* weight [[buffer(1)]], device float* out [[buffer(2)]],
	constant RMSNormParams& p [[buffer(3)]], uint row [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint nthreads [[threads_per_threadgroup]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("rmsnorm_f16")]] [[kernel]] void rmsnorm<half>(
	device const float* x [[buffer(0)]], device const half* weight [[buffer(1)]], device float* out [[buffer(2)]],
	constant RMSNormParams& p [[buffer(3)]], uint row [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint nthreads [[threads_per_threadgroup]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("rmsnorm_bf16")]] [[kernel]] void rmsnorm<ushort>(
	device const float* x [[buffer(0)]], device const ushort* weight [[buffer(1)]], device float* out [[buffer(2)]],
	constant RMSNormParams& p [[buffer(3)]], uint row [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint nthreads [[threads_per_threadgroup]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
