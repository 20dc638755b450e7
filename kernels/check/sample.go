package check

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// sampleUs are the uniform draws of a sampling case, one per row.
var sampleUs = []float32{0, 0.1, 0.35, 0.5, 0.8, 0.999999}

// sampleCases checks Sample: greedy rows full of tied maxima, up to a
// 151,936-wide vocabulary, and draws with top-p 0.9 and 1 (and top-p off)
// at several temperatures, whose ids must equal cpu.Sample's.
func sampleCases() []Case {
	cs := []Case{
		sampleCase("ties", 4, 1, 0, 0, tiedRow),
		sampleCase("ties", 5, 37, 0, 0.9, tiedRow),
		sampleCase("ties", 3, 1000, 0, 1, tiedRow),
		sampleCase("ties", 3, 151936, 0, 0.9, tiedRow),
		sampleCase("uniform", 4, 151936, 0, 0.9, uniformRow),
		sampleCase("sparse ties", 4, 4097, 0, 1, sparseTiesRow),
		sampleCase("sparse ties", 4, 151936, 0, 1, sparseTiesRow),
	}
	for _, s := range []struct {
		cols        int
		temperature float32
	}{{1, 1}, {5, 1}, {37, 0.7}, {1000, 1}, {4097, 0.7}, {151936, 1}, {151936, 0.6}} {
		gen := peakedRow
		if s.cols < 64 {
			gen = uniformRow
		}
		for _, topP := range []float32{0.9, 1} {
			cs = append(cs, sampleCase("draw", len(sampleUs), s.cols, s.temperature, topP, gen))
		}
	}
	return append(cs,
		sampleCase("draw", len(sampleUs), 1000, 1, 0, peakedRow),
		sampleCase("draw tied weights", len(sampleUs), 1000, 1, 0.9, tiedRow),
		sampleCase("draw tied weights", len(sampleUs), 4097, 0.8, 0.5, tiedRow),
	)
}

// tiedRow draws logits from a few values, so the max and other weights are
// shared by many tokens.
func tiedRow(r *rand.Rand, cols int) []float32 {
	row := make([]float32, cols)
	for i := range row {
		row[i] = -0.25 * float32(r.IntN(12))
	}
	return row
}

// sparseTiesRow puts a row's max at four random places, so its first index
// and the later ones lie in any of the threads' strides.
func sparseTiesRow(r *rand.Rand, cols int) []float32 {
	row := uniformRow(r, cols)
	for range 4 {
		row[r.IntN(cols)] = 5
	}
	return row
}

// uniformRow draws logits uniform in [-4, 4).
func uniformRow(r *rand.Rand, cols int) []float32 {
	row := make([]float32, cols)
	for i := range row {
		row[i] = 8*r.Float32() - 4
	}
	return row
}

// peakedRow draws a language model's kind of row: a few likely tokens
// (logits in [-3, 0]) over a tail of unlikely ones (in [-30, -15)). One
// likely token is the last, so that with every token a candidate a draw
// near u = 1 ends on it rather than in the tail, where neighbouring running
// sums are closer than rounding could tell apart.
func peakedRow(r *rand.Rand, cols int) []float32 {
	row := make([]float32, cols)
	for i := range row {
		row[i] = -15 - 15*r.Float32()
	}
	for range 7 {
		row[r.IntN(cols)] = -3 * r.Float32()
	}
	row[cols-1] = -3 * r.Float32()
	return row
}

// sampleCase samples rows rows of cols logits from gen, row r with u =
// sampleUs[r mod len(sampleUs)].
func sampleCase(kind string, rows, cols int, temperature, topP float32, gen func(*rand.Rand, int) []float32) Case {
	seed := uint64(rows*1_000_003+cols) ^ uint64(math.Float32bits(temperature)) ^ uint64(math.Float32bits(topP))<<1
	return Case{
		File:   "sample.metal",
		Kernel: "sample F32",
		Shape:  fmt.Sprintf("%s rows=%d cols=%d temperature=%g topP=%g", kind, rows, cols, temperature, topP),
		// Ids must be equal. Rows are drawn clear of rounding boundaries
		// (sampleBoundary), where the two sides' float32 sums, added in
		// different orders, could legitimately pick neighbouring tokens.
		Tol: 0,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			r := rand.New(rand.NewPCG(seed, 7))
			logits := make([]float32, 0, rows*cols)
			us := make([]float32, rows)
			want := make([]float32, rows)
			scratch := make([]float32, 2*cols)
			for i := range rows {
				us[i] = sampleUs[i%len(sampleUs)]
				row, err := clearRow(r, gen, cols, us[i], temperature, topP)
				if err != nil {
					return nil, nil, 0, fmt.Errorf("row %d: %w", i, err)
				}
				logits = append(logits, row...)
				want[i] = float32(cpu.Sample(row, us[i], temperature, topP, scratch))
			}
			outs, t, err := launch(dev, [][]byte{make([]byte, 4*rows), f32bytes(logits), f32bytes(us)}, func(e *metal.Encoder, b []*metal.Buffer) error {
				return lib.Sample(e, kernels.Whole(b[0]), kernels.Whole(b[1]), kernels.Whole(b[2]), rows, cols, temperature, topP)
			})
			if err != nil {
				return nil, nil, t, err
			}
			got := make([]float32, rows)
			for i := range got {
				got[i] = float32(int32(binary.LittleEndian.Uint32(outs[0][4*i:])))
			}
			return got, want, t, nil
		},
	}
}

// clearRow draws rows from gen until one whose draw with u lies clear of
// every rounding boundary (greedy rows always do).
func clearRow(r *rand.Rand, gen func(*rand.Rand, int) []float32, cols int, u, temperature, topP float32) ([]float32, error) {
	var err error
	for range 100 {
		row := gen(r, cols)
		if temperature == 0 {
			return row, nil
		}
		if err = sampleBoundary(row, u, temperature, topP); err == nil {
			return row, nil
		}
	}
	return nil, fmt.Errorf("no row of 100 clear of rounding boundaries: %w", err)
}

// sampleBoundary reports a draw of cpu.Sample that rounding could change.
// Sample and the kernel add the same float32 weights (up to a few ulps of
// their exponentials) in different orders; each sum of n weights is within
// n·2^-24 of its exact value, relative to the total, so the two differ by
// at most δ = (n+8)·2^-23 of the total. A draw is clear when, computed
// exactly from the reference's weights, the candidates' mass exceeds topP·W
// by more than δ·W and the next larger weight's falls short of it by more
// than δ·W; the largest excluded weight is below τ by more than 2^-18 of τ
// (many ulps); and the target u·kept is more than δ·kept from the running
// sums before and at the token drawn (only before it when that is the last
// candidate, which a sum short of the target draws as well). u = 0 is
// always clear: both sides draw the first candidate.
func sampleBoundary(logits []float32, u, temperature, topP float32) error {
	n := len(logits)
	mx := logits[cpu.Argmax(logits)]
	w := make([]float32, n)
	var total float64
	for i, l := range logits {
		w[i] = float32(math.Exp(float64((l - mx) / temperature)))
		total += float64(w[i])
	}
	delta := float64(n+8) * 0x1p-23
	tau, kept := float32(0), total
	if topP > 0 && topP < 1 {
		sorted := slices.Clone(w)
		slices.Sort(sorted)
		slices.Reverse(sorted)
		mass := float64(topP) * total
		var cum float64
		for i := 0; i < n; {
			j, c := i, cum
			for ; j < n && sorted[j] == sorted[i]; j++ {
				c += float64(sorted[j])
			}
			if c >= mass {
				tau, kept = sorted[i], c
				switch {
				case c-mass <= delta*total:
					return fmt.Errorf("candidates' mass %g within %g of topP·W = %g", c, delta*total, mass)
				case i > 0 && mass-cum <= delta*total:
					return fmt.Errorf("mass %g above the threshold within %g of topP·W = %g", cum, delta*total, mass)
				case j < n && float64(sorted[i]-sorted[j]) <= 0x1p-18*float64(sorted[i]):
					return fmt.Errorf("threshold weight %g next to %g", sorted[i], sorted[j])
				}
				break
			}
			i, cum = j, c
		}
	}
	if u == 0 {
		return nil
	}
	target := float64(u) * kept
	last := n - 1
	for w[last] < tau {
		last--
	}
	var run float64
	for i, x := range w {
		if x < tau {
			continue
		}
		prev := run
		run += float64(x)
		if run >= target {
			// At the last candidate a sum that falls short draws it too.
			if (i != last && run-target <= delta*kept) || target-prev <= delta*kept {
				return fmt.Errorf("target %g within %g of the running sums %g, %g", target, delta*kept, prev, run)
			}
			return nil
		}
	}
	return nil
}
