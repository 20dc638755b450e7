package lora

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// peftInit is tools/golden/peft_init.py's record of one layer PEFT adapted.
type peftInit struct {
	In    int     `json:"in_features"`
	Rank  int     `json:"rank"`
	Bound float64 `json:"bound"`
}

func readPEFTInit(t *testing.T) map[string]peftInit {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "peft_init", "init.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	out := map[string]peftInit{}
	for name, v := range all {
		if name == "versions" {
			continue
		}
		var p peftInit
		if err := json.Unmarshal(v, &p); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

// ksStatistic is the two-sample Kolmogorov–Smirnov statistic: the largest
// distance between the empirical distribution functions of a and b.
func ksStatistic(a, b []float32) float64 {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	var d float64
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] == x {
			i++
		}
		for j < len(b) && b[j] == x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

// checkUniform checks samples meant to be uniform on ±bound: none outside,
// and the largest magnitude close to the bound.
func checkUniform(t *testing.T, who string, a []float32, bound float64) {
	t.Helper()
	var peak float64
	for _, v := range a {
		peak = max(peak, math.Abs(float64(v)))
	}
	// float32 rounding of a value at the bound may exceed it by half an ulp.
	if peak > bound*(1+1e-6) {
		t.Errorf("%s: max |A| = %g exceeds the bound 1/√in = %g", who, peak, bound)
	}
	// For n uniform samples P(max|a| < (1-ε)·bound) = (1-ε)^n; with n ≥ 512
	// and ε = 0.03 that is below 2e-7, so a narrower distribution fails.
	if peak < 0.97*bound {
		t.Errorf("%s: max |A| = %g, want close to the bound %g", who, peak, bound)
	}
}

// TestInitMatchesPEFT compares lora.New's A and B with the matrices PEFT's
// get_peft_model created for layers of the same width and rank.
func TestInitMatchesPEFT(t *testing.T) {
	layers := readPEFTInit(t)
	w, err := hf.OpenWeightsFile(filepath.Join("testdata", "peft_init", "init.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, name := range []string{"narrow", "qwen05b", "qwen7b"} {
		t.Run(name, func(t *testing.T) {
			l, ok := layers[name]
			if !ok {
				t.Fatalf("init.json has no layer %q", name)
			}
			if want := 1 / math.Sqrt(float64(l.In)); math.Abs(l.Bound-want) > 1e-12 {
				t.Fatalf("fixture bound %g, want 1/√%d = %g", l.Bound, l.In, want)
			}
			st, err := w.Tensor(name+".A", l.Rank, l.In)
			if err != nil {
				t.Fatal(err)
			}
			peftA := make([]float32, l.Rank*l.In)
			st.Floats(peftA)
			checkUniform(t, "PEFT", peftA, l.Bound)
			st, err = w.Tensor(name+".B", 16, l.Rank)
			if err != nil {
				t.Fatal(err)
			}
			peftB := make([]float32, 16*l.Rank)
			st.Floats(peftB)
			if slices.ContainsFunc(peftB, func(v float32) bool { return v != 0 }) {
				t.Errorf("PEFT's B is not zero")
			}
			// One block whose q_proj reads l.In features.
			cfg := &hf.Config{Arch: "qwen2", VocabSize: 16, Hidden: l.In, Intermediate: 32, Layers: 1,
				Heads: l.In / 64, KVHeads: 1, HeadDim: 64, RMSNormEps: 1e-6, RopeTheta: 10000,
				MaxPositions: 64, AttentionBias: true, BOS: -1, EOS: []int{2}}
			m, err := nn.FromWeights(cfg, hf.RandomWeights(cfg, 1), cpu.Backend{})
			if err != nil {
				t.Fatal(err)
			}
			ad, err := New(m, Spec{Rank: l.Rank, Alpha: 2 * float64(l.Rank), Targets: []hf.Module{hf.QProj}}, rand.New(rand.NewPCG(3, 4)))
			if err != nil {
				t.Fatal(err)
			}
			lo := ad.Blocks[0][hf.QProj]
			if lo.A.Rows != l.Rank || lo.A.Cols != l.In {
				t.Fatalf("A is %d×%d, PEFT's %d×%d", lo.A.Rows, lo.A.Cols, l.Rank, l.In)
			}
			params := download(t, m, ad)
			ourA := part(params, ad, lo.A)
			checkUniform(t, "ours", ourA, l.Bound)
			if slices.ContainsFunc(part(params, ad, lo.B), func(v float32) bool { return v != 0 }) {
				t.Errorf("our B is not zero")
			}
			// Two samples of one distribution give a KS statistic above
			// c·√((n+m)/(nm)) with probability α; c = 2.23 is α = 1e-4.
			// A different law (a normal, a bound of 1/√out or √(6/in))
			// moves the statistic far above that at these sizes.
			n := float64(len(peftA))
			crit := 2.23 * math.Sqrt(2/n)
			if d := ksStatistic(ourA, peftA); d > crit {
				t.Errorf("KS statistic between our A and PEFT's = %.4f, want ≤ %.4f", d, crit)
			} else {
				t.Logf("KS statistic %.4f (critical %.4f at α = 1e-4)", d, crit)
			}
		})
	}
}
