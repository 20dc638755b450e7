package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/goseal/ttt/nn"
)

func TestSample(t *testing.T) {
	// Probabilities 0.5, 0.3, 0.2 (after softmax at temperature 1): top-p
	// 0.6 keeps the first two, so index 2 never appears and index 0 appears
	// about 0.5/0.8 of the time.
	logits := []float32{0, -0.5108256, -0.9162907}
	rng := rand.New(rand.NewPCG(1, 2))
	scratch := make([]float32, 2*len(logits))
	var counts [3]int
	const n = 20000
	for range n {
		counts[Sample(logits, rng.Float32(), 1, 0.6, scratch)]++
	}
	if counts[2] != 0 {
		t.Errorf("index outside the nucleus drawn %d times", counts[2])
	}
	// 5 standard deviations of a binomial(20000, 0.625) proportion ≈ 0.017.
	if f := float64(counts[0]) / n; f < 0.625-0.017 || f > 0.625+0.017 {
		t.Errorf("index 0 drawn with frequency %.3f, want 0.625", f)
	}

	cases := []struct {
		name          string
		logits        []float32
		u, temp, topP float32
		want          int32
	}{
		{"greedy takes the first maximum", []float32{1, 3, 3, 2}, 0.9, 0, 0.5, 1},
		// Weights 1, 1, e^-1: top-p 0.3 needs the first weight, and its tie
		// comes along, so u = 0.99 lands on the second of the tied pair.
		{"ties are kept together", []float32{0, 0, -1}, 0.99, 1, 0.3, 1},
		{"u = 0 takes the first candidate", []float32{-5, 0, -1}, 0, 1, 1, 0},
		{"u near 1 takes the last candidate", []float32{0, 0, -1}, 0.999999, 1, 0.9, 2},
		{"top-p 1 keeps everything", []float32{0, -1}, 0.9, 1, 1, 1},
		{"top-p 0.5 keeps the heaviest", []float32{0, -1}, 0.9, 1, 0.5, 0},
	}
	for _, c := range cases {
		if got := Sample(c.logits, c.u, c.temp, c.topP, make([]float32, 2*len(c.logits))); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

func TestDropout(t *testing.T) {
	x := make([]float32, 100003)
	for i := range x {
		x[i] = 1
	}
	for _, p := range []float32{0.1, 0.5} {
		out := make([]float32, len(x))
		Dropout(out, x, p, nn.DropoutKey(42))
		zeros := 0
		for _, v := range out {
			switch v {
			case 0:
				zeros++
			case nn.DropoutScale(p):
			default:
				t.Fatalf("p=%g: element %g is neither 0 nor 1/(1-p)", p, v)
			}
		}
		// 5 standard deviations of a binomial(n, p) proportion.
		sd := math.Sqrt(float64(p*(1-p)) / float64(len(x)))
		if f := float64(zeros) / float64(len(x)); math.Abs(f-float64(p)) > 5*sd {
			t.Errorf("p=%g: dropped a fraction %.4f", p, f)
		}
		again := make([]float32, len(x))
		Dropout(again, x, p, nn.DropoutKey(42))
		other := make([]float32, len(x))
		Dropout(other, x, p, nn.DropoutKey(43))
		same, differ := true, 0
		for i := range out {
			same = same && out[i] == again[i]
			if out[i] != other[i] {
				differ++
			}
		}
		if !same {
			t.Errorf("p=%g: the same key gave two masks", p)
		}
		if differ == 0 {
			t.Errorf("p=%g: keys 42 and 43 gave the same mask", p)
		}
	}
}
