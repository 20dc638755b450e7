// Cross-entropy over a vocabulary fused with its gradient, one threadgroup
// per row: pass 1 finds the row's max and Σexp(l − max) online in float;
// pass 2 writes dlogits = scale·(softmax − onehot(label)), over the logits
// themselves when they alias, and the row's loss. A row whose label is
// negative (or past the vocabulary) gets loss 0 and a zero gradient row.

#include <metal_stdlib>
using namespace metal;

struct CrossEntropyParams {
	uint rows, cols;
	float scale;
	uint aligned; // rows start 16-byte aligned: whole float4 loads and stores
};

// online_add folds the values v, whose max is vmax, into a running max m
// and a running sum s of exp(x − m).
inline void online_add(thread float& m, thread float& s, float vmax, float4 v) {
	if (vmax > m) {
		s *= exp(m - vmax);
		m = vmax;
	}
	const float4 e = exp(v - m);
	s += (e.x + e.y) + (e.z + e.w);
}

// rescale gives s, a sum of exp(x − m), as a sum of exp(x − to); a thread
// with no values has s = 0 (and m = −inf) and keeps 0.
inline float rescale(float s, float m, float to) { return s > 0.0f ? s * exp(m - to) : 0.0f; }

// Threads per threadgroup: a multiple of 32 up to 1024, no more than one
// per four logits (rounded up to 32).
kernel void cross_entropy(device const float* logits [[buffer(0)]],
                          device const int* labels [[buffer(1)]],
                          device float* dlogits [[buffer(2)]],
                          device float* losses [[buffer(3)]],
                          constant CrossEntropyParams& p [[buffer(4)]],
                          uint row [[threadgroup_position_in_grid]],
                          uint tid [[thread_index_in_threadgroup]],
                          uint nthreads [[threads_per_threadgroup]],
                          uint sg [[simdgroup_index_in_threadgroup]],
                          uint lane [[thread_index_in_simdgroup]]) {
	threadgroup float part_max[32];
	threadgroup float part_sum[32];
	threadgroup float target[1];
	device const float* lr = logits + row * p.cols;
	device float* dr = dlogits + row * p.cols;
	const bool aligned = p.aligned != 0;
	const uint full = p.cols & ~3u; // logits in whole quads; the rest one by one
	const int label = labels[row];

	// Ignored row: zero gradient, zero loss.
	if (label < 0 || uint(label) >= p.cols) {
		for (uint i = 4 * tid; i < full; i += 4 * nthreads) {
			if (aligned)
				*(device float4*)(dr + i) = float4(0.0f);
			else
				dr[i] = dr[i + 1] = dr[i + 2] = dr[i + 3] = 0.0f;
		}
		for (uint i = full + tid; i < p.cols; i += nthreads)
			dr[i] = 0.0f;
		if (tid == 0)
			losses[row] = 0.0f;
		return;
	}

	// Pass 1: each thread's running max and sum, then the SIMD group's,
	// then the row's from the SIMD groups' in order. The target logit is
	// read before any gradient is written over it.
	if (tid == 0)
		target[0] = lr[label];
	float m = -INFINITY, s = 0.0f;
	for (uint i = 4 * tid; i < full; i += 4 * nthreads) {
		const float4 v = load4(lr, i, full, aligned);
		online_add(m, s, max(max(v.x, v.y), max(v.z, v.w)), v);
	}
	for (uint i = full + tid; i < p.cols; i += nthreads) {
		const float v = lr[i];
		if (v > m) {
			s = rescale(s, m, v);
			m = v;
		}
		s += exp(v - m);
	}
	const float sg_max = simd_max(m);
	s = simd_sum(rescale(s, m, sg_max));
	if (lane == 0) {
		part_max[sg] = sg_max;
		part_sum[sg] = s;
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);
	const uint nsg = (nthreads + 31) / 32;
	float mx = -INFINITY;
	for (uint k = 0; k < nsg; k++)
		mx = max(mx, part_max[k]);
	float sum = 0.0f;
	for (uint k = 0; k < nsg; k++)
		sum += rescale(part_sum[k], part_max[k], mx);

	// Pass 2: the gradient, each thread over the logits it read, and the loss.
	const float k = p.scale / sum;
	for (uint i = 4 * tid; i < full; i += 4 * nthreads) {
		float4 g = exp(load4(lr, i, full, aligned) - mx) * k;
		if (uint(label) - i < 4)
			g[uint(label) - i] -= p.scale;
		if (aligned) {
			*(device float4*)(dr + i) = g;
		} else {
			dr[i] = g.x;
			dr[i + 1] = g.y;
			dr[i + 2] = g.z;
			dr[i + 3] = g.w;
		}
	}
	for (uint i = full + tid; i < p.cols; i += nthreads) {
		float g = exp(lr[i] - mx) * k;
		if (i == uint(label))
			g -= p.scale;
		dr[i] = g;
	}
	if (tid == 0)
		losses[row] = (mx + log(sum)) - target[0];
}
