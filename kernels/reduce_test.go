package kernels_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// TestReduceDeterministic checks that Sum and SumSquares give the same bits
// on every run of the same input.
func TestReduceDeterministic(t *testing.T) {
	d, l := library(t)
	const n = 1<<20 + 3
	r := rand.New(rand.NewPCG(3, 4))
	in := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(in[4*i:], math.Float32bits(r.Float32()*2-1))
	}
	x, err := d.NewBufferFrom(in)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release()
	dst, _ := d.NewBuffer(8)
	defer dst.Release()
	scratch, _ := d.NewBuffer(kernels.ReduceScratchSize(n))
	defer scratch.Release()
	var first [2]uint32
	for run := range 5 {
		cb, err := d.NewCommandBuffer()
		if err != nil {
			t.Fatal(err)
		}
		e := cb.Encoder()
		if err := l.Sum(e, kernels.Whole(dst), kernels.Whole(x), kernels.Whole(scratch), n, false); err != nil {
			t.Fatal(err)
		}
		if err := l.SumSquares(e, kernels.Buf{Buffer: dst, Off: 4}, kernels.Whole(x), kernels.Whole(scratch), n); err != nil {
			t.Fatal(err)
		}
		e.End()
		cb.Commit()
		if err := cb.Wait(); err != nil {
			t.Fatal(err)
		}
		got := [2]uint32{binary.LittleEndian.Uint32(dst.Bytes()), binary.LittleEndian.Uint32(dst.Bytes()[4:])}
		if run == 0 {
			first = got
		} else if got != first {
			t.Fatalf("run %d gave sum, sum of squares bits %08x, run 0 gave %08x", run, got, first)
		}
	}
}

// benchReduce measures one Sum or SumSquares (both dispatches) over n
// values.
func benchReduce(b *testing.B, n int, square bool) {
	d, l := library(b)
	x, _ := d.NewBuffer(4 * n)
	dst, _ := d.NewBuffer(4)
	scratch, _ := d.NewBuffer(kernels.ReduceScratchSize(n))
	defer x.Release()
	defer dst.Release()
	defer scratch.Release()
	b.SetBytes(int64(4 * n))
	runBench(b, d, func(e *metal.Encoder) error {
		if square {
			return l.SumSquares(e, kernels.Whole(dst), kernels.Whole(x), kernels.Whole(scratch), n)
		}
		return l.Sum(e, kernels.Whole(dst), kernels.Whole(x), kernels.Whole(scratch), n, false)
	})
	roofline(b, 0, 4*float64(n))
}

func BenchmarkSum1M(b *testing.B)        { benchReduce(b, 1<<20, false) }
func BenchmarkSumSquares1M(b *testing.B) { benchReduce(b, 1<<20, true) }
