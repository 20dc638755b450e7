package nn_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// tinyConfig is a model small enough for finite differences.
func tinyConfig(arch string) *hf.Config {
	return &hf.Config{Arch: arch, VocabSize: 40, Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2,
		HeadDim: 4, RMSNormEps: 1e-6, RopeTheta: 10000, TieEmbeddings: arch == "qwen2", MaxPositions: 64,
		AttentionBias: arch == "qwen2", BOS: -1, EOS: []int{0}}
}

// randomAdapter puts a rank-2 nn.LoRA with random A and B on every module.
func randomAdapter(m *nn.Model, rng *rand.Rand) *nn.Adapter {
	ad := &nn.Adapter{Blocks: make([][hf.NumModules]*nn.LoRA, len(m.Blocks))}
	for l := range ad.Blocks {
		for mod := hf.Module(0); mod < hf.NumModules; mod++ {
			out, in := m.Config.LinearShape(mod)
			lo := &nn.LoRA{A: m.B.NewTensor(2, in), B: m.B.NewTensor(out, 2), GradA: m.B.NewTensor(2, in), GradB: m.B.NewTensor(out, 2), Scale: 1.5}
			for i := range lo.A.Data {
				lo.A.Data[i] = float32(0.3 * rng.NormFloat64())
			}
			for i := range lo.B.Data {
				lo.B.Data[i] = float32(0.3 * rng.NormFloat64())
			}
			ad.Blocks[l][mod] = lo
		}
	}
	return ad
}

// gradBatch has two sequences: one of 7 tokens, one of 5 real tokens padded
// to 7 (padding masked as keys, as in SEAL's max_length mode), with a few
// ignored labels.
func gradBatch() *nn.TrainBatch {
	b := &nn.TrainBatch{}
	seqs := [][]int32{{3, 9, 14, 1, 22, 35, 7}, {5, 6, 30, 2, 11, 0, 0}}
	for s, seq := range seqs {
		seg := nn.Segment{Q: len(b.IDs), N: len(seq), KV: len(b.IDs)}
		if s == 1 {
			seg.Keys = 5
		}
		b.Segs = append(b.Segs, seg)
		for i, id := range seq {
			b.IDs = append(b.IDs, id)
			b.Pos = append(b.Pos, int32(i))
			b.Labels = append(b.Labels, id)
		}
	}
	b.Labels[1], b.Labels[2] = -100, -100
	return b
}

func TestLoRAGradientsMatchFiniteDifferences(t *testing.T) {
	for _, arch := range []string{"qwen2", "llama"} {
		t.Run(arch, func(t *testing.T) {
			cfg := tinyConfig(arch)
			m, err := nn.FromWeights(cfg, hf.RandomWeights(cfg, 3), cpu.Backend{})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(4, 5))
			ad := randomAdapter(m, rng)
			// Dropout on two modules: the masks come from the seed, so every
			// pass below (same seed) drops the same inputs and the finite
			// differences see the same function.
			ad.Blocks[0][hf.VProj].Dropout = 0.3
			ad.Blocks[1][hf.GateProj].Dropout = 0.5
			b := gradBatch()
			tr := m.NewTrainer()
			if _, n, err := tr.LossAndGrad(b, ad, 1, 7); err != nil || n != 10 {
				t.Fatalf("LossAndGrad: %d predicted tokens (want 10), %v", n, err)
			}
			loss := func() float64 {
				l, _, err := m.NewTrainer().LossAndGrad(b, ad, 0, 7)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			// Dropout is live: another seed drops other inputs.
			if other, _, _ := m.NewTrainer().LossAndGrad(b, ad, 0, 8); other == loss() {
				t.Fatal("the loss does not depend on the dropout seed")
			}
			// Central differences in float32, Richardson-extrapolated from
			// steps h and h/2 so the truncation error is O(h⁴) ≈ 1e-6. The
			// rounding error is about 1e-7·|loss|/(h/2) ≈ 1e-3 for a loss near
			// 35, so 3e-3 absolute plus 1% relative separates a correct
			// gradient from a wrong one (a missing term is off by far more).
			const h = 1e-2
			diff := func(w *nn.Tensor, i int, h float32) float64 {
				orig := w.Data[i]
				w.Data[i] = orig + h
				up := loss()
				w.Data[i] = orig - h
				down := loss()
				w.Data[i] = orig
				return (up - down) / (2 * float64(h))
			}
			for l := range ad.Blocks {
				for mod := hf.Module(0); mod < hf.NumModules; mod++ {
					lo := ad.Blocks[l][mod]
					for _, p := range []struct {
						name string
						w, g *nn.Tensor
					}{{"A", lo.A, lo.GradA}, {"B", lo.B, lo.GradB}} {
						for k := 0; k < 3; k++ {
							i := rng.IntN(len(p.w.Data))
							num := (4*diff(p.w, i, h/2) - diff(p.w, i, h)) / 3
							got := float64(p.g.Data[i])
							if math.Abs(num-got) > 3e-3+0.01*math.Abs(num) {
								t.Errorf("block %d %s %s[%d]: analytic %.5f, numeric %.5f", l, mod, p.name, i, got, num)
							}
						}
					}
				}
			}
		})
	}
}
