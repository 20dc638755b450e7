package nn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// goldenModel is one tiny model written by tools/golden/models.py with
// transformers, and what transformers computed with it.
type goldenModel struct {
	InputIDs      [][]int32 `json:"input_ids"`
	AttentionMask [][]int   `json:"attention_mask"`
	Prompts       [][]int32 `json:"prompts"`
	MaxNewTokens  int       `json:"max_new_tokens"`
	EOS           int       `json:"eos_token_id"`
	Greedy        map[string][][]int32
}

var goldenNames = []string{"qwen2_tied", "qwen2_untied", "llama3"}

func readGolden(t *testing.T, name string) (*goldenModel, *hf.Weights) {
	t.Helper()
	dir := filepath.Join("testdata", "models", name)
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenModel
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	w, err := hf.OpenWeightsFile(filepath.Join(dir, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return &g, w
}

// PaddedBatch lays out right-padded rows as SEAL's training batches are:
// each row a sequence at positions 0.., pads masked as keys.
func paddedBatch(ids [][]int32, mask [][]int) *nn.Batch {
	b := &nn.Batch{}
	for r, row := range ids {
		real := 0
		for _, m := range mask[r] {
			real += m
		}
		b.Segs = append(b.Segs, nn.Segment{Q: len(b.IDs), N: len(row), KV: len(b.IDs), Keys: real})
		for i, id := range row {
			b.IDs = append(b.IDs, id)
			b.Pos = append(b.Pos, int32(i))
		}
	}
	return b
}

func maxAbsDiff(t *testing.T, got []float32, want *hf.StoredTensor) float64 {
	t.Helper()
	w := make([]float32, len(got))
	if len(want.Data) != 4*len(got) {
		t.Fatalf("reference %s has %d bytes, want %d floats", want.Name, len(want.Data), len(got))
	}
	want.Floats(w)
	var d float64
	for i := range got {
		d = max(d, math.Abs(float64(got[i]-w[i])))
	}
	return d
}

func TestGoldenLogits(t *testing.T) {
	cases := []struct {
		variant, ref string
		tol          float64
	}{
		// f32 weights, f32 compute on both sides: the only differences are
		// summation order and libm ulps, ~1e-6 relative on logits of
		// magnitude ≤ 10, so 1e-4 absolute leaves a wide margin while any
		// wrong op (a missing bias, a mis-rotated head) is off by > 1e-2.
		{"f32", "f32.logits", 1e-4},
		// bf16 weights widened exactly to f32: the same comparison.
		{"bf16", "bf16.logits_f32", 1e-4},
		// transformers running in bf16 rounds every activation to 8
		// significant bits (relative step 2^-8 ≈ 0.4%); over 2-3 blocks and
		// a 64-wide LM head the logits (|x| ≲ 8) drift by a few hundredths
		// (0.03-0.05 seen). 0.15 bounds that drift with a 3× margin yet
		// still fails on a wrong op, which moves logits by whole units.
		{"bf16", "bf16.logits_bf16", 0.15},
	}
	for _, name := range goldenNames {
		g, ref := readGolden(t, name)
		for _, c := range cases {
			for _, b := range testBackends(t) {
				t.Run(name+"/"+c.ref+"/"+b.Name(), func(t *testing.T) {
					m, err := nn.Load(filepath.Join("testdata", "models", name, c.variant), b)
					if err != nil {
						t.Fatal(err)
					}
					logits, err := m.Logits(paddedBatch(g.InputIDs, g.AttentionMask), nil, nil)
					if err != nil {
						t.Fatal(err)
					}
					checkWaits(t, b, 1)
					want, err := ref.Tensor(c.ref, len(g.InputIDs), len(g.InputIDs[0]), m.Config.VocabSize)
					if err != nil {
						t.Fatal(err)
					}
					if d := maxAbsDiff(t, logits, want); d > c.tol {
						t.Errorf("max |logit difference| = %.3g, want ≤ %g", d, c.tol)
					} else {
						t.Logf("max |logit difference| = %.3g", d)
					}
				})
			}
		}
	}
}

func TestGoldenGreedy(t *testing.T) {
	for _, name := range goldenNames {
		g, _ := readGolden(t, name)
		for _, c := range []struct{ variant, ref string }{{"f32", "f32"}, {"bf16", "bf16_f32"}} {
			for _, b := range testBackends(t) {
				t.Run(name+"/"+c.ref+"/"+b.Name(), func(t *testing.T) {
					m, err := nn.Load(filepath.Join("testdata", "models", name, c.variant), b)
					if err != nil {
						t.Fatal(err)
					}
					got, err := m.Generate(context.Background(), g.Prompts, nil, nn.GenerateOptions{MaxNewTokens: g.MaxNewTokens, StopIDs: []int{g.EOS}})
					if err != nil {
						t.Fatal(err)
					}
					// One read per forward pass: the prefill and each decode
					// step, of which there are at most MaxNewTokens.
					checkWaits(t, b, 1+g.MaxNewTokens)
					for i := range g.Prompts {
						if !slices.Equal(got[i], g.Greedy[c.ref][i]) {
							t.Errorf("prompt %d: generated %v, transformers %v", i, got[i], g.Greedy[c.ref][i])
						}
					}
				})
			}
		}
	}
}

func TestGoldenConfigs(t *testing.T) {
	want := map[string]string{
		"qwen2_tied":   "qwen2 L2 H64 heads4/2 d16 tied bias rope1e+04 scaled=false",
		"qwen2_untied": "qwen2 L3 H64 heads4/2 d16 untied bias rope1e+06 scaled=false",
		"llama3":       "llama L2 H64 heads4/2 d32 untied nobias rope5e+05 scaled=true",
	}
	for name, w := range want {
		c, err := hf.LoadConfig(filepath.Join("testdata", "models", name, "f32"))
		if err != nil {
			t.Fatal(err)
		}
		tie, bias := "untied", "nobias"
		if c.TieEmbeddings {
			tie = "tied"
		}
		if c.AttentionBias {
			bias = "bias"
		}
		got := fmt.Sprintf("%s L%d H%d heads%d/%d d%d %s %s rope%.0e scaled=%v", c.Arch, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.HeadDim, tie, bias, c.RopeTheta, c.RopeScaling != nil)
		if got != w {
			t.Errorf("%s: %s, want %s", name, got, w)
		}
	}
}
