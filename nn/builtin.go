package nn

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
)

// BuiltinConfig is the configuration of the built-in demo model: a tiny
// Qwen2-architecture transformer over a byte-level vocabulary (256 bytes and
// the special tokens <|endoftext|>=256, <|im_start|>=257, <|im_end|>=258).
// It exists so that every command runs with no download; it knows nothing
// until fine-tuned, which is what the demo shows.
func BuiltinConfig() *Config {
	return &Config{
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
	m, err := FromWeights(cfg, RandomWeights(cfg, 0x5ea1), b)
	if err != nil {
		panic(fmt.Sprintf("nn: built-in model: %v", err)) // the config above is fixed; this cannot fail
	}
	return m
}

// RandomWeights draws every tensor the config needs from a seeded normal
// distribution (std 0.1 for matrices and biases, 1 ± 0.1 for norms), in
// float32, as an in-memory Weights.
func RandomWeights(cfg *Config, seed uint64) *Weights {
	rng := rand.New(rand.NewPCG(seed, 0xb17))
	w := &Weights{tensors: map[string]*StoredTensor{}}
	add := func(name string, norm bool, shape ...int) {
		n := 1
		for _, s := range shape {
			n *= s
		}
		data := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			v := float32(0.1 * rng.NormFloat64())
			if norm {
				v += 1
			}
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		w.tensors[name] = &StoredTensor{Name: name, File: "(random)", DType: F32, Shape: shape, Data: data}
	}
	H := cfg.Hidden
	add("model.embed_tokens.weight", false, cfg.VocabSize, H)
	add("model.norm.weight", true, H)
	if !cfg.TieEmbeddings {
		add("lm_head.weight", false, cfg.VocabSize, H)
	}
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", true, H)
		add(p+"post_attention_layernorm.weight", true, H)
		for mod := Module(0); mod < NumModules; mod++ {
			out, in := cfg.LinearShape(mod)
			add(p+mod.Path()+".weight", false, out, in)
			if cfg.AttentionBias && mod <= VProj {
				add(p+mod.Path()+".bias", false, cfg.LinearOut(mod))
			}
		}
	}
	return w
}
