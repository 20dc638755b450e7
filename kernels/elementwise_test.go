package kernels_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// TestDropoutMask compares the kernel's dropout mask with cpu.Dropout's,
// position by position, on ragged sizes through the float4 path (a buffer
// rounded up to 16 bytes, so it can be 16-byte aligned) and the scalar
// path (a 4-byte offset). The share of dropped elements must also
// be within five standard deviations of p.
func TestDropoutMask(t *testing.T) {
	d, l := library(t)
	for _, p := range []float32{0.1, 0.5} {
		for _, n := range []int{1003, 4099, 151937} {
			for _, off := range []int{0, 4} {
				const seed = 0x5ea1_0000_0001
				x := make([]float32, n)
				for i := range x {
					x[i] = 1 + float32(i%7)
				}
				want := make([]float32, n)
				cpu.Dropout(want, x, p, nn.DropoutKey(seed))
				size := off + 4*n
				if off == 0 {
					size = (size + 15) / 16 * 16
				}
				raw := make([]byte, size)
				for i, v := range x {
					binary.LittleEndian.PutUint32(raw[off+4*i:], math.Float32bits(v))
				}
				buf, err := d.NewBufferFrom(raw)
				if err != nil {
					t.Fatal(err)
				}
				cb, err := d.NewCommandBuffer()
				if err != nil {
					t.Fatal(err)
				}
				e := cb.Encoder()
				x0 := kernels.Buf{Buffer: buf, Off: off}
				err = l.Dropout(e, x0, x0, n, p, seed)
				e.End()
				if err != nil {
					t.Fatal(err)
				}
				cb.Commit()
				if err := cb.Wait(); err != nil {
					t.Fatal(err)
				}
				got := buf.Bytes()[off:]
				var dropped, wantDropped, first = 0, 0, -1
				for i := range n {
					g := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:]))
					if g == 0 {
						dropped++
					}
					if want[i] == 0 {
						wantDropped++
					}
					if (g == 0) != (want[i] == 0) && first < 0 {
						first = i
					}
				}
				buf.Release()
				if dropped != wantDropped || first >= 0 {
					t.Errorf("p=%g n=%d off=%d: %d dropped, cpu.Dropout %d; first difference at %d", p, n, off, dropped, wantDropped, first)
				}
				mean, sd := float64(p)*float64(n), math.Sqrt(float64(p)*float64(1-p)*float64(n))
				if math.Abs(float64(dropped)-mean) > 5*sd {
					t.Errorf("p=%g n=%d: %d dropped, expected %.0f ± %.0f", p, n, dropped, mean, sd)
				}
			}
		}
	}
}

// elementwiseN is the benchmarks' tensor size: 128 rows of Qwen2-7B's
// intermediate width, 18944.
const elementwiseN = 128 * 18944

func BenchmarkAdd(b *testing.B) {
	bench(b, []int{4 * elementwiseN, 4 * elementwiseN, 4 * elementwiseN}, 12*elementwiseN, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.Add(e, x[0], x[1], x[2], elementwiseN)
	})
}

func BenchmarkCopy(b *testing.B) {
	bench(b, []int{4 * elementwiseN, 4 * elementwiseN}, 8*elementwiseN, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.Copy(e, x[0], x[1], elementwiseN)
	})
}

func BenchmarkFill(b *testing.B) {
	bench(b, []int{4 * elementwiseN}, 4*elementwiseN, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.Fill(e, x[0], elementwiseN, 1)
	})
}

func BenchmarkAddBias128x3584BF16(b *testing.B) {
	const rows, cols = 128, 3584
	bench(b, []int{4 * rows * cols, 2 * cols}, 8*rows*cols, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.AddBias(e, x[0], x[1], hf.BF16, rows, cols)
	})
}

func BenchmarkSiLUMul(b *testing.B) {
	bench(b, []int{4 * elementwiseN, 4 * elementwiseN, 4 * elementwiseN}, 12*elementwiseN, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.SiLUMul(e, x[0], x[1], x[2], elementwiseN)
	})
}

func BenchmarkSiLUMulBackward(b *testing.B) {
	sizes := []int{4 * elementwiseN, 4 * elementwiseN, 4 * elementwiseN, 4 * elementwiseN, 4 * elementwiseN}
	bench(b, sizes, 20*elementwiseN, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.SiLUMulBackward(e, x[0], x[1], x[2], x[3], x[4], elementwiseN)
	})
}

func BenchmarkDropout(b *testing.B) {
	bench(b, []int{4 * elementwiseN, 4 * elementwiseN}, 8*elementwiseN, func(l *kernels.Library, e *metal.Encoder, x []kernels.Buf) error {
		return l.Dropout(e, x[0], x[1], elementwiseN, 0.1, 42)
	})
}
