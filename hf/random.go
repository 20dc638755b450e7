package hf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
)

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
