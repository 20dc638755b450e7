// One AdamW step over a flat float tensor (every adapter parameter in one
// allocation), in cpu.AdamW's order of float operations: the gradient
// scaled by the clipping factor, decoupled weight decay, the moment
// updates, the bias-corrected step. The clipping factor comes from the sum
// of squares of all gradients, read from the device, as nn.ClipFactor
// computes it; the per-step scalars come from the host (cpu.AdamWScalars).

#include <metal_stdlib>
using namespace metal;

struct AdamWParams {
	uint n;
	float decay, beta1, beta2, bc2sqrt, step_size, eps, max_norm;
};

// One thread per element.
kernel void adamw(device float* param [[buffer(0)]],
                  device const float* grad [[buffer(1)]],
                  device float* m [[buffer(2)]],
                  device float* v [[buffer(3)]],
                  device const float* grad_sum_sq [[buffer(4)]],
                  constant AdamWParams& p [[buffer(5)]],
                  uint i [[thread_position_in_grid]]) {
	if (i >= p.n)
		return;
	const float norm = precise::sqrt(grad_sum_sq[0]);
	const float clip = min(1.0f, p.max_norm / (norm + 1e-6f));

	const float g = grad[i] * clip;
	const float w = param[i] * p.decay;
	const float mi = m[i] + (g - m[i]) * (1.0f - p.beta1);
	const float vi = v[i] * p.beta2 + (1.0f - p.beta2) * g * g;
	const float denom = precise::sqrt(vi) / p.bc2sqrt + p.eps;
	param[i] = w - p.step_size * (mi / denom);
	m[i] = mi;
	v[i] = vi;
}
