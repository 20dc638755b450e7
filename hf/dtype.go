package hf

import (
	"fmt"
	"math"
)

// DType is the element type of a stored tensor.
type DType int

// The element types: weights are stored as F32, F16 or BF16; I32 holds
// indices.
const (
	F32 DType = iota
	F16
	BF16
	I32 // token ids, positions and labels; never a weight here
)

// String returns the safetensors name of the type (F32, F16, BF16).
func (d DType) String() string {
	if d < F32 || d > I32 {
		return fmt.Sprintf("DType(%d)", int(d))
	}
	return [...]string{"F32", "F16", "BF16", "I32"}[d]
}

// Size is the width of one element in bytes.
func (d DType) Size() int { return [...]int{4, 2, 2, 4}[d] }

// BF16ToF32 widens a bfloat16 bit pattern to float32 (a 16-bit shift: exact).
func BF16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// F32ToBF16 rounds a float32 to the nearest bfloat16, ties to even, as torch does.
// NaN stays NaN.
func F32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// F16ToF32 widens an IEEE half-precision bit pattern to float32 (exact,
// subnormals included).
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

// F32ToF16 rounds a float32 to the nearest half, ties to even; overflow gives
// infinity, tiny values become subnormal or zero.
func F32ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	exp := int32(u>>23&0xff) - 127 + 15
	man := u & 0x7fffff
	switch {
	case u&0x7fffffff > 0x7f800000:
		return sign | 0x7e00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint32(14 - exp)
		half := uint32(1) << (shift - 1)
		r := man >> shift
		rem := man & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(exp)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

func f32le(b []byte) float32 {
	return math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}
