// RMSNorm, forward and backward, one threadgroup per row with the sums
// accumulated in float. Forward: out[r,:] = x[r,:] / sqrt(mean(x[r,:]²) +
// eps) * weight. The weight is float, half, or bfloat16 carried as ushort
// bits (common.metal).

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

// RMSNorm backward: with inv = 1/sqrt(mean(x²) + eps) and
// c = inv³·mean(x·w·dy), dx = inv·w·dy − x·c (the weight is frozen: no dw).
// One threadgroup per row; Σx² and Σx·w·dy are reduced side by side, in
// float. Each thread writes only elements it read, so dx may be
// dy or x.
template <typename W>
kernel void rmsnorm_backward(device const float* x [[buffer(0)]],
                             device const W* weight [[buffer(1)]],
                             device const float* dy [[buffer(2)]],
                             device float* dx [[buffer(3)]],
                             constant RMSNormParams& p [[buffer(4)]],
                             uint row [[threadgroup_position_in_grid]],
                             uint tid [[thread_index_in_threadgroup]],
                             uint nthreads [[threads_per_threadgroup]],
                             uint sg [[simdgroup_index_in_threadgroup]],
                             uint lane [[thread_index_in_simdgroup]]) {
	threadgroup float partial_ss[32];
	threadgroup float partial_dot[32];
	device const float* xr = x + row * p.cols;
	device const float* dyr = dy + row * p.cols;
	device float* dxr = dx + row * p.cols;

	float ss = 0.0f, dot = 0.0f;
	for (uint i = tid; i < p.cols; i += nthreads) {
		const float v = xr[i];
		ss += v * v;
		dot += v * widen(weight[i]) * dyr[i];
	}
	ss = simd_sum(ss);
	dot = simd_sum(dot);
	if (lane == 0) {
		partial_ss[sg] = ss;
		partial_dot[sg] = dot;
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (sg == 0) {
		const bool live = lane < nthreads / 32;
		ss = simd_sum(live ? partial_ss[lane] : 0.0f);
		dot = simd_sum(live ? partial_dot[lane] : 0.0f);
		if (lane == 0) {
			partial_ss[0] = ss;
			partial_dot[0] = dot;
		}
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);
	const float cols = float(p.cols);
	const float inv = 1.0f / sqrt(partial_ss[0] / cols + p.eps);
	const float c = inv * inv * inv * partial_dot[0] / cols;

	for (uint i = tid; i < p.cols; i += nthreads)
		dxr[i] = inv * widen(weight[i]) * dyr[i] - xr[i] * c;
}

template [[host_name("rmsnorm_backward_f32")]] [[kernel]] void rmsnorm_backward<float>(
	device const float* x [[buffer(0)]], device const float* weight [[buffer(1)]], device const float* dy [[buffer(2)]],
	device float* dx [[buffer(3)]], constant RMSNormParams& p [[buffer(4)]], uint row [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint nthreads [[threads_per_threadgroup]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("rmsnorm_backward_f16")]] [[kernel]] void rmsnorm_backward<half>(
	device const float* x [[buffer(0)]], device const half* weight [[buffer(1)]], device const float* dy [[buffer(2)]],
	device float* dx [[buffer(3)]], constant RMSNormParams& p [[buffer(4)]], uint row [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint nthreads [[threads_per_threadgroup]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("rmsnorm_backward_bf16")]] [[kernel]] void rmsnorm_backward<ushort>(
	device const float* x [[buffer(0)]], device const ushort* weight [[buffer(1)]], device const float* dy [[buffer(2)]],
	device float* dx [[buffer(3)]], constant RMSNormParams& p [[buffer(4)]], uint row [[threadgroup_position_in_grid]],
	uint tid [[thread_index_in_threadgroup]], uint nthreads [[threads_per_threadgroup]],
	uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
