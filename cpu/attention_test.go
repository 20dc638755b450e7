package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/goseal/ttt/nn"
)

// TestBlockedAttentionMatchesRows checks the matrix-product form of attention
// and its gradient against the query-by-query form, on segments long enough
// to take the blocked path: plain, padded (keys masked), after cached keys
// (Past > 0), with grouped key/value heads.
func TestBlockedAttentionMatchesRows(t *testing.T) {
	s := nn.AttnShape{Heads: 4, KVHeads: 2, HeadDim: 8}
	segs := []nn.Segment{
		{Q: 0, N: 20, KV: 0},
		{Q: 20, N: 33, KV: 20, Keys: 25},
		{Q: 53, N: 17, KV: 53, Past: 6}, // its keys are rows 53..75
	}
	rows, kvRows := 70, 76
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	qc, kc := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	q, k, v, dout := fill(rows*qc), fill(kvRows*kc), fill(kvRows*kc), fill(rows*qc)
	outA, outB := make([]float32, rows*qc), make([]float32, rows*qc)
	lseA, lseB := make([]float32, rows*s.Heads), make([]float32, rows*s.Heads)
	Attention(outA, lseA, q, k, v, segs, s)
	attentionRows(outB, lseB, q, k, v, segs, s)
	dqA, dkA, dvA := make([]float32, rows*qc), make([]float32, kvRows*kc), make([]float32, kvRows*kc)
	dqB, dkB, dvB := make([]float32, rows*qc), make([]float32, kvRows*kc), make([]float32, kvRows*kc)
	AttentionBackward(dqA, dkA, dvA, dout, outA, lseA, q, k, v, segs, s)
	attentionRowsBackward(dqB, dkB, dvB, dout, outB, lseB, q, k, v, segs, s)
	// Both forms compute the same float32 sums in a different order: with
	// unit-normal inputs, sums of ≤ 76 terms and outputs of order 1, they
	// agree to ~1e-6; 1e-4 is a wide margin that any indexing mistake breaks.
	for _, c := range []struct {
		name string
		a, b []float32
	}{{"out", outA, outB}, {"lse", lseA, lseB}, {"dq", dqA, dqB}, {"dk", dkA, dkB}, {"dv", dvA, dvB}} {
		var worst float64
		for i := range c.a {
			worst = max(worst, math.Abs(float64(c.a[i]-c.b[i])))
		}
		if worst > 1e-4 {
			t.Errorf("%s: blocked and per-query attention differ by %.3g", c.name, worst)
		}
	}
}
