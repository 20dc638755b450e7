package check

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// mm is one matrix product: the cpu.MatMulScaled arguments, and off, a byte
// offset at which every operand starts inside its buffer.
type mm struct {
	m, n, k        int
	transA, transB bool
	alpha          float32
	accumulate     bool
	off            int
}

// matmulCases covers every kernel and shape class of kernels.MatMul: one
// row, a few rows, single elements, sizes off the tile and vector
// multiples, each tile shape, k = 4096, the LM head's n = 151936, LoRA's
// thin products at ranks 8, 13 and 128 (split along k where k is long), and
// alpha ≠ 1 with and without accumulating.
func matmulCases() []Case {
	const T, F = true, false
	mms := map[hf.DType][]mm{
		hf.F32: {
			{1, 1, 1, F, F, 1, F, 0}, {7, 5, 3, F, T, 1, F, 0}, {64, 64, 64, F, F, 1, F, 0},
			{65, 63, 67, T, F, 1, T, 0}, {65, 63, 67, F, T, 1, F, 0}, {33, 17, 4096, F, T, 1, F, 0},
			{100, 1, 7, T, T, 1, F, 0}, {1, 4096, 64, F, T, 1, F, 0}, {1, 65, 4096, F, F, 1, T, 0}, {1, 70, 4500, F, F, 1, T, 0},
			{1, 7, 1, T, F, 1, F, 0}, {1, 9, 13, F, T, 1, F, 0},
			// Scaled, with and without accumulating; a few rows.
			{130, 70, 45, F, T, 0.5, F, 0}, {70, 130, 45, T, F, -2, T, 0}, {3, 70, 130, F, T, 0.25, F, 0},
			{16, 33, 64, F, T, 1, T, 0}, {17, 40, 64, F, T, 1, F, 0},
			// 64x64 tiles, ragged on both sides.
			{520, 520, 33, F, F, 1, F, 0},
			// LoRA at rank 8, 13 and 128: t = x·Aᵀ, y += s·t·Bᵀ, dB += s·dyᵀ·u,
			// du = s·dy·B, dA += duᵀ·x.
			{200, 8, 300, F, T, 1, F, 0}, {77, 13, 256, F, T, 1, F, 0}, {40, 128, 200, F, T, 1, F, 0},
			{77, 150, 13, F, T, 2, T, 0}, {150, 13, 1100, T, F, 2, T, 0}, {77, 8, 150, F, F, 2, F, 0},
			{8, 100, 2100, T, F, 1, T, 0}, {13, 64, 700, T, F, 1, F, 0}, {128, 96, 1024, T, F, 1, T, 0},
			// Operands inside larger buffers, off the vector alignment.
			{33, 40, 64, F, T, 1, F, 4},
		},
		hf.F16: {
			{7, 5, 3, F, T, 1, F, 0}, {65, 63, 67, F, T, 1, T, 0}, {64, 64, 64, T, F, 1, F, 0},
			{1, 130, 67, F, T, 1, F, 0}, {1, 70, 128, F, T, 1, T, 0}, {1, 33, 65, F, F, 1, F, 0},
			{5, 20, 36, F, T, 0.25, F, 0},
		},
		hf.BF16: {
			{7, 5, 3, F, T, 1, F, 0}, {65, 63, 67, F, T, 1, T, 0}, {64, 64, 64, T, F, 1, F, 0},
			{1, 130, 67, F, T, 1, F, 0}, {1, 70, 4096, F, T, 1, F, 0}, {1, 33, 65, F, F, 1, F, 0},
			{9, 40, 4096, F, T, 1, F, 0}, {130, 2000, 40, F, T, 1, F, 0},
			// The LM head for a few rows, and its backward product (k the
			// vocabulary, split).
			{3, 151936, 32, F, T, 1, F, 0}, {20, 96, 3000, F, F, 1, F, 0},
			{33, 40, 64, F, T, 1, F, 4},
		},
	}
	var cs []Case
	for _, dt := range []hf.DType{hf.F32, hf.F16, hf.BF16} {
		for _, s := range mms[dt] {
			cs = append(cs, matmulCase(dt, s))
		}
	}
	return cs
}

func matmulCase(dt hf.DType, s mm) Case {
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{s.transA, "transA"}, {s.transB, "transB"}, {s.accumulate, "accumulate"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	if s.alpha != 1 {
		flags = append(flags, fmt.Sprintf("alpha=%g", s.alpha))
	}
	if s.off != 0 {
		flags = append(flags, fmt.Sprintf("off=%d", s.off))
	}
	m, n, k := s.m, s.n, s.k
	seed := uint64(m*1_000_003 + n*1009 + k)
	return Case{
		File:   "matmul.metal",
		Family: 7, // simdgroup matrices
		Kernel: "matmul " + dt.String(),
		Shape:  strings.TrimSpace(fmt.Sprintf("m=%d n=%d k=%d %s", m, n, k, strings.Join(flags, " "))),
		// Both sides add k products of values in [-1, 1) in float32, in
		// different orders (blocks, split-K partials, fused multiply-adds).
		// Each rounding is at most 2^-24 of a partial sum; the errors of k
		// roundings, of random sign, stay well below k·2^-22 relative to
		// max(1, |c|), a bound that a wrong element (error ~1) breaks.
		// Scaling by alpha scales the error with it.
		Tol: float64(max(k, 16)) * 0x1p-22 * math.Max(1, math.Abs(float64(s.alpha))),
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			a := random(m*k, seed)
			wb, wref := weights(random(k*n, seed+1), dt)
			c0 := random(m*n, seed+2)
			want := append([]float32(nil), c0...)
			cpu.MatMulScaled(want, a, wref, m, n, k, s.transA, s.transB, s.alpha, s.accumulate)
			pad := make([]byte, s.off)
			ins := [][]byte{append(pad, f32bytes(c0)...), append(pad, f32bytes(a)...), append(pad, wb...)}
			if sz := kernels.MatMulScratch(m, n, k); sz > 0 {
				ins = append(ins, make([]byte, sz))
			}
			outs, t, err := launch(dev, ins, func(e *metal.Encoder, b []*metal.Buffer) error {
				var scratch kernels.Buf
				if len(b) > 3 {
					scratch = kernels.Whole(b[3])
				}
				at := func(i int) kernels.Buf { return kernels.Buf{Buffer: b[i], Off: s.off} }
				return lib.MatMul(e, at(0), at(1), at(2), dt, m, n, k, s.transA, s.transB, s.alpha, s.accumulate, scratch)
			})
			if err != nil {
				return nil, nil, t, err
			}
			return f32s(outs[0][s.off:]), want, t, nil
		},
	}
}
