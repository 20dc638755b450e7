package kernels

import (
	"fmt"

	"github.com/goseal/ttt/metal"
)

// Stage 1 of a reduction: reduceThreads threads per threadgroup, each
// threadgroup taking at least reduceMinPerGroup elements and there being at
// most reduceMaxGroups threadgroups (so stage 2 adds at most that many
// partials).
const (
	reduceThreads     = 256
	reduceMinPerGroup = 4096
	reduceMaxGroups   = 1024
)

// reduceGroups gives stage 1's threadgroups for n elements and the elements
// each takes (a multiple of 4, so every stretch starts 16-byte aligned when
// x does). It depends on n alone: the same n sums in the same order.
func reduceGroups(n int) (groups, perGroup int) {
	groups = min(reduceMaxGroups, max(1, (n+reduceMinPerGroup-1)/reduceMinPerGroup))
	perGroup = ((n+groups-1)/groups + 3) / 4 * 4
	return groups, max(perGroup, 4)
}

// ReduceScratchSize is the size in bytes of the scratch buffer that Sum and
// SumSquares need for n elements: one float32 partial per threadgroup.
func ReduceScratchSize(n int) int {
	groups, _ := reduceGroups(n)
	return 4 * groups
}

// Sum encodes dst[0] = Σx, or dst[0] += Σx when accumulate is set, over
// n float32 values, with the meaning of cpu.Sum (but added in float32). It
// encodes two dispatches: per-threadgroup partials into scratch
// (ReduceScratchSize(n) bytes), then one threadgroup adding them in a fixed
// order, so the same x gives the same bits on every run.
func (l *Library) Sum(e *metal.Encoder, dst, x, scratch Buf, n int, accumulate bool) error {
	return l.reduce(e, "reduce_sum", dst, x, scratch, n, accumulate)
}

// SumSquares encodes dst[0] = Σx² over n float32 values, with the meaning
// of cpu.SumSquares (but added in float32); scratch and determinism as for
// Sum.
func (l *Library) SumSquares(e *metal.Encoder, dst, x, scratch Buf, n int) error {
	return l.reduce(e, "reduce_sum_squares", dst, x, scratch, n, false)
}

func (l *Library) reduce(e *metal.Encoder, name string, dst, x, scratch Buf, n int, accumulate bool) error {
	if n < 0 || n >= 1<<32-reduceMaxGroups*4 {
		return fmt.Errorf("kernels: %s: bad size n=%d", name, n)
	}
	if err := need(name, "dst", dst, 4); err != nil {
		return err
	}
	if err := need(name, "x", x, 4*n); err != nil {
		return err
	}
	if err := need(name, "scratch", scratch, ReduceScratchSize(n)); err != nil {
		return err
	}
	groups, perGroup := reduceGroups(n)
	e.SetPipeline(l.pipes[name])
	bind(e, 0, x)
	bind(e, 1, scratch)
	e.SetBytes(2, params(n, perGroup, aligned(16, x), false))
	e.Dispatch(metal.Size{X: groups, Y: 1, Z: 1}, metal.Size{X: reduceThreads, Y: 1, Z: 1})

	e.SetPipeline(l.pipes["reduce_final"])
	bind(e, 0, scratch)
	bind(e, 1, dst)
	e.SetBytes(2, params(groups, 0, false, accumulate))
	e.Dispatch(metal.Size{X: 1, Y: 1, Z: 1}, metal.Size{X: reduceThreads, Y: 1, Z: 1})
	return nil
}
