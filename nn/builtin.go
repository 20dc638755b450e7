package nn

import (
	"fmt"

	"github.com/goseal/ttt/hf"
)

// BuiltinConfig is the configuration of the built-in demo model: a tiny
// Qwen2-architecture transformer over a byte-level vocabulary (256 bytes and
// the special tokens <|endoftext|>=256, <|im_start|>=257, <|im_end|>=258).
// It exists so that every command runs with no download; it knows nothing
// until fine-tuned, which is what the demo shows.
func BuiltinConfig() *hf.Config {
	return &hf.Config{
		Arch: "qwen2", VocabSize: 259, Hidden: 128, Intermediate: 256, Layers: 4,
		Heads: 4, KVHeads: 2, HeadDim: 32, RMSNormEps: 1e-6, RopeTheta: 10000,
		TieEmbeddings: true, MaxPositions: 4096, AttentionBias: true,
		BOS: -1, EOS: []int{256}, TorchDType: "float32",
	}
}

// Builtin returns the built-in demo model (see BuiltinConfig). Its weights
// are drawn from a fixed seed, so every run gets the same model.
func Builtin(b Backend) *Model {
	cfg := BuiltinConfig()
	m, err := FromWeights(cfg, hf.RandomWeights(cfg, 0x5ea1), b)
	if err != nil {
		panic(fmt.Sprintf("nn: built-in model: %v", err)) // the config above is fixed; this cannot fail
	}
	return m
}
