package nn

// Counter-based random numbers shared by every backend: a value depends only
// on a key and an element's index, never on a stream's state, so a GPU
// thread computes element i's draw on its own and every backend draws the
// same numbers. Kernels mirror these functions exactly (32-bit integer
// operations only).

// mix32 is a 32-bit integer finaliser (xor-shift-multiply, "lowbias32"):
// each input bit changes about half of the output bits.
func mix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// DropoutKey turns a 64-bit dropout seed into the 32-bit key of
// DropoutUniform.
func DropoutKey(seed uint64) uint32 {
	return mix32(uint32(seed) ^ mix32(uint32(seed>>32)^0x9e3779b9))
}

// DropoutUniform returns element i's uniform draw in [0, 1) for key, a
// multiple of 2⁻²⁴ (so the float32 value is exact). Dropout zeroes element i
// when DropoutUniform(key, i) < p.
func DropoutUniform(key, i uint32) float32 {
	return float32(mix32(mix32(i^key)+key)>>8) * 0x1p-24
}

// DropoutScale is the factor kept elements are multiplied by, 1/(1-p), in
// float32 arithmetic.
func DropoutScale(p float32) float32 { return 1 / (1 - p) }
