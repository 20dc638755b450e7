package nn_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/nn/nntest"
)

// tinyConfig is a model small enough for finite differences (head
// dimension 16, the smallest the attention kernels are built for).
func tinyConfig(arch string) *hf.Config {
	return &hf.Config{Arch: arch, VocabSize: 40, Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2,
		HeadDim: 16, RMSNormEps: 1e-6, RopeTheta: 10000, TieEmbeddings: arch == "qwen2", MaxPositions: 64,
		AttentionBias: arch == "qwen2", BOS: -1, EOS: []int{0}}
}

// randomAdapter puts a rank-2 nn.LoRA with random A and B on every module
// and returns it with its parameters as uploaded.
func randomAdapter(m *nn.Model, rng *rand.Rand) (*nn.Adapter, []float32) {
	ad := nn.NewAdapter(m.B, m.Config, 2, 1.5, 0, func(int, hf.Module) bool { return true })
	params := make([]float32, ad.Params.Len())
	for i := range params {
		params[i] = float32(0.3 * rng.NormFloat64())
	}
	m.B.Upload(ad.Params, params)
	return ad, params
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
		for _, backend := range testBackends(t) {
			t.Run(arch+"/"+backend.Name(), func(t *testing.T) {
				cfg := tinyConfig(arch)
				m, err := nn.FromWeights(cfg, hf.RandomWeights(cfg, 3), backend)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(4, 5))
				ad, params := randomAdapter(m, rng)
				// Dropout on two modules: the masks come from the seed, so every
				// pass below (same seed) drops the same inputs and the finite
				// differences see the same function.
				ad.Blocks[0][hf.VProj].Dropout = 0.3
				ad.Blocks[1][hf.GateProj].Dropout = 0.5
				b := gradBatch()
				lossT := m.B.NewTensor(hf.F32, 1, 1)
				if n, err := m.NewTrainer().LossAndGrad(b, ad, 1, 7, lossT); err != nil || n != 10 {
					t.Fatalf("LossAndGrad: %d predicted tokens (want 10), %v", n, err)
				}
				grads := make([]float32, ad.Grads.Len())
				if err := m.B.Download(grads, ad.Grads); err != nil {
					t.Fatal(err)
				}
				checkWaits(t, backend, 1)
				lossWith := func(seed uint64) float64 {
					m.B.Fill(lossT, 0)
					if _, err := m.NewTrainer().LossAndGrad(b, ad, 0, seed, lossT); err != nil {
						t.Fatal(err)
					}
					var l [1]float32
					if err := m.B.Download(l[:], lossT); err != nil {
						t.Fatal(err)
					}
					return float64(l[0])
				}
				loss := func() float64 { return lossWith(7) }
				// Dropout is live: another seed drops other inputs.
				if lossWith(8) == loss() {
					t.Fatal("the loss does not depend on the dropout seed")
				}
				// Central differences in float32, Richardson-extrapolated from
				// steps h and h/2 so the truncation error is O(h⁴) ≈ 1e-6. The
				// rounding error is about 1e-7·|loss|/(h/2) ≈ 1e-3 for a loss near
				// 35, so 3e-3 absolute plus 1% relative separates a correct
				// gradient from a wrong one (a missing term is off by far more).
				const h = 1e-2
				diff := func(i int, h float32) float64 {
					orig := params[i]
					params[i] = orig + h
					m.B.Upload(ad.Params, params)
					up := loss()
					params[i] = orig - h
					m.B.Upload(ad.Params, params)
					down := loss()
					params[i] = orig
					m.B.Upload(ad.Params, params)
					return (up - down) / (2 * float64(h))
				}
				for l := range ad.Blocks {
					for mod := hf.Module(0); mod < hf.NumModules; mod++ {
						lo := ad.Blocks[l][mod]
						for _, p := range []struct {
							name string
							w    *nn.Tensor
						}{{"A", lo.A}, {"B", lo.B}} {
							for k := 0; k < 3; k++ {
								i := ad.Offset(p.w) + rng.IntN(p.w.Len())
								num := (4*diff(i, h/2) - diff(i, h)) / 3
								got := float64(grads[i])
								if math.Abs(num-got) > 3e-3+0.01*math.Abs(num) {
									t.Errorf("block %d %s %s[%d]: analytic %.5f, numeric %.5f", l, mod, p.name, i-ad.Offset(p.w), got, num)
								}
							}
						}
					}
				}
			})
		}
	}
}

// TestCheckpointing: recomputing each block's activations in the backward
// pass gives the same loss and gradients, bit for bit (the same ops on the
// same values), and keeps less: the trainer's buffers shrink.
func TestCheckpointing(t *testing.T) {
	for _, arch := range []string{"qwen2", "llama"} {
		t.Run(arch, func(t *testing.T) {
			cfg := tinyConfig(arch)
			cfg.Layers = 4
			run := func(checkpoint bool) (loss float32, grads []float32, allocated int64) {
				s := nntest.NewStrict(cpu.Backend{})
				m, err := nn.FromWeights(cfg, hf.RandomWeights(cfg, 3), s)
				if err != nil {
					t.Fatal(err)
				}
				ad, _ := randomAdapter(m, rand.New(rand.NewPCG(4, 5)))
				ad.Blocks[1][hf.UpProj].Dropout = 0.4
				lossT := m.B.NewTensor(hf.F32, 1, 1)
				tr := m.NewTrainer()
				tr.Checkpoint = checkpoint
				before := s.Allocated
				if _, err := tr.LossAndGrad(gradBatch(), ad, 1, 7, lossT); err != nil {
					t.Fatal(err)
				}
				allocated = s.Allocated - before
				var l [1]float32
				grads = make([]float32, ad.Grads.Len())
				if err := m.B.Download(l[:], lossT); err != nil {
					t.Fatal(err)
				}
				if err := m.B.Download(grads, ad.Grads); err != nil {
					t.Fatal(err)
				}
				return l[0], grads, allocated
			}
			l0, g0, a0 := run(false)
			l1, g1, a1 := run(true)
			if l0 != l1 || !slices.Equal(g0, g1) {
				t.Errorf("checkpointing changed the loss (%g → %g) or the gradients", l0, l1)
			}
			if a1 >= a0 {
				t.Errorf("the trainer allocated %d bytes checkpointing, %d without", a1, a0)
			}
			t.Logf("trainer buffers: %d bytes, %d checkpointing", a0, a1)
		})
	}
}
