package nn_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// benchConfig is the mid-size model the benchmarks use: hidden 512, 8
// layers, vocabulary 32k (about 50M parameters, 200 MB in float32).
func benchConfig() *hf.Config {
	return &hf.Config{Arch: "qwen2", VocabSize: 32000, Hidden: 512, Intermediate: 1408, Layers: 8, Heads: 8, KVHeads: 4,
		HeadDim: 64, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositions: 4096, AttentionBias: true, BOS: -1, EOS: []int{0}}
}

func benchModel(b *testing.B) *nn.Model {
	cfg := benchConfig()
	m, err := nn.FromWeights(cfg, hf.RandomWeights(cfg, 9), cpu.Backend{})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func benchPrompt(n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(1 + (i*7919)%31000)
	}
	return p
}

// BenchmarkPrefill runs a 256-token prompt through the model (no cache).
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b)
	batch := seqBatch(benchPrompt(256))
	var logits []float32
	b.ResetTimer()
	for range b.N {
		var err error
		if logits, err = m.Logits(batch, nil, logits); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(256*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkDecode generates 64 tokens after a 32-token prompt for 1 and for
// 16 prompts at once (SEAL evaluates all questions of a request together);
// tokens/s counts generated tokens only, prefill time included.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	for _, n := range []int{1, 16} {
		b.Run("batch"+strconv.Itoa(n), func(b *testing.B) {
			prompts := make([][]int32, n)
			for i := range prompts {
				prompts[i] = benchPrompt(32 + i)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := m.Generate(context.Background(), prompts, nil, nn.GenerateOptions{MaxNewTokens: 64}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(64*n*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkTrainStep runs one nn.LoRA training pass (forward, loss, backward;
// rank 32 on q_proj and v_proj) over 256 tokens and reports trained tokens/s
// and the process's peak resident memory.
func BenchmarkTrainStep(b *testing.B) {
	m := benchModel(b)
	ad := nn.NewAdapter(m.B, m.Config, 32, 2, 0, func(_ int, mod hf.Module) bool { return mod == hf.QProj || mod == hf.VProj })
	ids := benchPrompt(256)
	tb := &nn.TrainBatch{Batch: *seqBatch(ids), Labels: ids}
	tr := m.NewTrainer()
	loss := m.B.NewTensor(hf.F32, 1, 1)
	b.ResetTimer()
	for range b.N {
		if _, err := tr.LossAndGrad(tb, ad, 1.0/256, 0, loss); err != nil {
			b.Fatal(err)
		}
		if err := m.B.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(256*b.N)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-MB")
}

// peakRSS reads the process's peak resident set size (VmHWM) from /proc,
// or 0 where there is none.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
