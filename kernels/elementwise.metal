// Elementwise kernels over float tensors: add, copy, fill, bias addition,
// the SwiGLU product silu(gate)·up and its gradient, and dropout.
//
// The flat kernels take a thread per element, or, when the host has found
// every buffer 16-byte aligned (vec), a thread per four elements with float4
// loads; the last thread then finishes a ragged end one element at a time.
// An output may be one of the inputs (the same buffer and offset): each
// thread reads its elements before it writes them.

#include <metal_stdlib>
using namespace metal;

struct ElemParams {
	uint n;   // elements
	uint vec; // a thread per four elements, float4 loads
};

// span gives the elements [x, y) thread t takes one at a time: its own, or,
// in a vec dispatch past the whole float4s, the ragged end.
inline uint2 span(uint t, uint n, uint vec) {
	return vec ? uint2(4 * t, n) : uint2(t, min(t + 1, n));
}

kernel void add(device const float* a [[buffer(0)]],
                device const float* b [[buffer(1)]],
                device float* out [[buffer(2)]],
                constant ElemParams& p [[buffer(3)]],
                uint t [[thread_position_in_grid]]) {
	if (p.vec && t < p.n / 4) {
		((device float4*)out)[t] = ((device const float4*)a)[t] + ((device const float4*)b)[t];
		return;
	}
	const uint2 s = span(t, p.n, p.vec);
	for (uint i = s.x; i < s.y; i++)
		out[i] = a[i] + b[i];
}

// copy_u32: dst = src as 32-bit words (float32 or int32 tensors alike).
kernel void copy_u32(device const uint* src [[buffer(0)]],
                     device uint* dst [[buffer(1)]],
                     constant ElemParams& p [[buffer(2)]],
                     uint t [[thread_position_in_grid]]) {
	if (p.vec && t < p.n / 4) {
		((device uint4*)dst)[t] = ((device const uint4*)src)[t];
		return;
	}
	const uint2 s = span(t, p.n, p.vec);
	for (uint i = s.x; i < s.y; i++)
		dst[i] = src[i];
}

struct FillParams {
	uint n, vec;
	float value;
};

kernel void fill_f32(device float* x [[buffer(0)]],
                     constant FillParams& p [[buffer(1)]],
                     uint t [[thread_position_in_grid]]) {
	if (p.vec && t < p.n / 4) {
		((device float4*)x)[t] = float4(p.value);
		return;
	}
	const uint2 s = span(t, p.n, p.vec);
	for (uint i = s.x; i < s.y; i++)
		x[i] = p.value;
}

// add_bias: x[r,:] += bias for every row; a grid of cols (or cols/4 when
// vec) by rows threads. The bias is a stored type, widened (common.metal).
struct BiasParams {
	uint rows, cols;
	uint vec; // cols % 4 == 0 and both buffers aligned for 4-element loads
};

template <typename W>
kernel void add_bias(device float* x [[buffer(0)]],
                     device const W* bias [[buffer(1)]],
                     constant BiasParams& p [[buffer(2)]],
                     uint2 t [[thread_position_in_grid]]) {
	if (t.y >= p.rows)
		return;
	device float* xr = x + t.y * p.cols;
	if (p.vec) {
		if (t.x < p.cols / 4)
			((device float4*)xr)[t.x] += widen4(((device const vec<W, 4>*)bias)[t.x]);
	} else if (t.x < p.cols) {
		xr[t.x] += widen(bias[t.x]);
	}
}

template [[host_name("add_bias_f32")]] [[kernel]] void add_bias<float>(
	device float* x [[buffer(0)]], device const float* bias [[buffer(1)]],
	constant BiasParams& p [[buffer(2)]], uint2 t [[thread_position_in_grid]]);
template [[host_name("add_bias_f16")]] [[kernel]] void add_bias<half>(
	device float* x [[buffer(0)]], device const half* bias [[buffer(1)]],
	constant BiasParams& p [[buffer(2)]], uint2 t [[thread_position_in_grid]]);
template [[host_name("add_bias_bf16")]] [[kernel]] void add_bias<ushort>(
	device float* x [[buffer(0)]], device const ushort* bias [[buffer(1)]],
	constant BiasParams& p [[buffer(2)]], uint2 t [[thread_position_in_grid]]);

// sigmoid is 1/(1+e^-g), in the order of operations of the Go reference.
inline float sigmoid(float g) { return 1.0f / (1.0f + exp(-g)); }
inline float4 sigmoid(float4 g) { return 1.0f / (1.0f + exp(-g)); }

// silu_mul: out = silu(gate)·up = gate·σ(gate)·up, written g/(1+e^-g)·up.
kernel void silu_mul(device const float* gate [[buffer(0)]],
                     device const float* up [[buffer(1)]],
                     device float* out [[buffer(2)]],
                     constant ElemParams& p [[buffer(3)]],
                     uint t [[thread_position_in_grid]]) {
	if (p.vec && t < p.n / 4) {
		float4 g = ((device const float4*)gate)[t];
		((device float4*)out)[t] = g / (1.0f + exp(-g)) * ((device const float4*)up)[t];
		return;
	}
	const uint2 s = span(t, p.n, p.vec);
	for (uint i = s.x; i < s.y; i++)
		out[i] = gate[i] / (1.0f + exp(-gate[i])) * up[i];
}

// silu_mul_backward: with s = σ(gate), dup = dout·gate·s and
// dgate = dout·up·s·(1 + gate·(1−s)), the derivative of gate·s.
kernel void silu_mul_backward(device const float* dout [[buffer(0)]],
                              device const float* gate [[buffer(1)]],
                              device const float* up [[buffer(2)]],
                              device float* dgate [[buffer(3)]],
                              device float* dup [[buffer(4)]],
                              constant ElemParams& p [[buffer(5)]],
                              uint t [[thread_position_in_grid]]) {
	if (p.vec && t < p.n / 4) {
		float4 g = ((device const float4*)gate)[t];
		float4 u = ((device const float4*)up)[t];
		float4 d = ((device const float4*)dout)[t];
		float4 sig = sigmoid(g);
		((device float4*)dup)[t] = d * g * sig;
		((device float4*)dgate)[t] = d * u * sig * (1.0f + g * (1.0f - sig));
		return;
	}
	const uint2 s = span(t, p.n, p.vec);
	for (uint i = s.x; i < s.y; i++) {
		float g = gate[i], u = up[i], d = dout[i];
		float sig = sigmoid(g);
		dup[i] = d * g * sig;
		dgate[i] = d * u * sig * (1.0f + g * (1.0f - sig));
	}
}

// Dropout: element i (its index in the tensor) is zeroed when its draw
// mix32(mix32(i ^ key) + key) >> 8, a 24-bit integer k, has k·2⁻²⁴ < p
// (nn.DropoutUniform). The host passes threshold = ⌈p·2²⁴⌉, so the test
// k < threshold is the same comparison in integers; kept elements are
// multiplied by scale = nn.DropoutScale(p). Bit-exact with the Go reference.
struct DropoutParams {
	uint n, vec;
	uint key, threshold;
	float scale;
};

// mix32 is nn/random.go's 32-bit finaliser; uint arithmetic wraps mod 2³².
inline uint mix32(uint x) {
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

inline float drop(float x, uint i, constant DropoutParams& p) {
	return (mix32(mix32(i ^ p.key) + p.key) >> 8) < p.threshold ? 0.0f : x * p.scale;
}

kernel void dropout(device const float* x [[buffer(0)]],
                    device float* out [[buffer(1)]],
                    constant DropoutParams& p [[buffer(2)]],
                    uint t [[thread_position_in_grid]]) {
	if (p.vec && t < p.n / 4) {
		float4 v = ((device const float4*)x)[t];
		const uint i = 4 * t;
		((device float4*)out)[t] = float4(drop(v.x, i, p), drop(v.y, i + 1, p), drop(v.z, i + 2, p), drop(v.w, i + 3, p));
		return;
	}
	const uint2 s = span(t, p.n, p.vec);
	for (uint i = s.x; i < s.y; i++)
		out[i] = drop(x[i], i, p);
}
