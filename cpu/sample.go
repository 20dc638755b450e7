package cpu

import (
	"math"
	"slices"
)

// Argmax returns the index of the largest value (the first one on ties).
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// Sample picks a token from one row of logits. Temperature 0 is greedy
// (Argmax). Otherwise, with weights w_i = exp((l_i − max)/temperature) and
// W = Σw_i, the candidates are every token whose weight is at least τ, where
// τ is the largest weight such that the tokens weighing at least τ carry
// topP·W or more (all tokens when topP ≤ 0 or ≥ 1; tied weights are kept or
// dropped together). The token drawn is the first candidate, in index order,
// at which the running sum of candidate weights reaches u·(their total), for
// u uniform in [0, 1); the last candidate if rounding leaves it short.
// scratch must hold 2·len(logits) values. The weights are float32, as a kernel
// computes them.
func Sample(logits []float32, u, temperature, topP float32, scratch []float32) int32 {
	if temperature == 0 {
		return int32(Argmax(logits))
	}
	w := scratch[:len(logits)]
	mx := logits[Argmax(logits)]
	var total float32
	for i, l := range logits {
		w[i] = float32(math.Exp(float64((l - mx) / temperature)))
		total += w[i]
	}
	tau := float32(0)
	if topP > 0 && topP < 1 {
		tau = nucleusThreshold(w, topP*total, scratch[len(logits):2*len(logits)])
	}
	var kept float32
	for _, x := range w {
		if x >= tau {
			kept += x
		}
	}
	target, last := u*kept, 0
	var run float32
	for i, x := range w {
		if x < tau {
			continue
		}
		run += x
		last = i
		if run >= target {
			return int32(i)
		}
	}
	return int32(last)
}

// nucleusThreshold returns the largest weight τ such that the weights ≥ τ
// add up to at least mass; sorted is scratch of len(w).
func nucleusThreshold(w []float32, mass float32, sorted []float32) float32 {
	copy(sorted, w)
	slices.Sort(sorted)
	var cum float32
	for i := len(sorted) - 1; i >= 0; i-- {
		cum += sorted[i]
		if cum >= mass && (i == 0 || sorted[i-1] != sorted[i]) {
			return sorted[i]
		}
	}
	return 0
}
