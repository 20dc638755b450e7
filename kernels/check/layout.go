package check

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// guard fills the bytes of a case's buffer around its tensor. A kernel
// that writes there changes an output's guard values, which the cases
// compare along with the tensor.
const guard = float32(-7777)

// pad returns the contents of a buffer that holds b at byte offset off (a
// multiple of 4), guard values before it. When off is a multiple of 16,
// guard values also follow b up to a multiple of 16 bytes, so the buffer
// and the tensor can both be 16-byte aligned (see kernels.Buf), even when
// b's length is ragged: the float4 paths then run with their ragged ends.
// Otherwise the buffer ends with b, against the emulator's guard page.
func pad(b []byte, off int) []byte {
	n := off + len(b)
	if off%16 == 0 {
		n = (n + 15) / 16 * 16
	}
	p := make([]byte, n)
	for i := 0; i+4 <= n; i += 4 {
		binary.LittleEndian.PutUint32(p[i:], math.Float32bits(guard))
	}
	copy(p[off:], b)
	return p
}

// at is the Buf of a tensor at byte offset off of b.
func at(b *metal.Buffer, off int) kernels.Buf { return kernels.Buf{Buffer: b, Off: off} }

// nonzero returns n values of magnitude in [0.5, 1) and random sign, the
// same for the same seed.
func nonzero(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5ea1))
	v := make([]float32, n)
	for i := range v {
		v[i] = 0.5 + r.Float32()/2
		if r.IntN(2) == 0 {
			v[i] = -v[i]
		}
	}
	return v
}

// scaled returns v with every element multiplied by s.
func scaled(v []float32, s float32) []float32 {
	for i := range v {
		v[i] *= s
	}
	return v
}

// i32bytes returns v as little-endian int32 bytes.
func i32bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}
