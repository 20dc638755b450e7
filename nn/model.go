package nn

import (
	"fmt"

	"github.com/goseal/ttt/hf"
)

// Block holds one transformer block's weights. Linear weights are stored
// [out, in] as in Hugging Face; Bias entries are nil where a layer has none.
type Block struct {
	AttnNorm, MLPNorm *Tensor
	Linear            [hf.NumModules]*Tensor
	Bias              [hf.NumModules]*Tensor
}

// Model is a loaded decoder-only transformer (Qwen2 or Llama family). Its
// weights are read-only: adapters and caches live outside it, so one Model
// serves any number of requests, one after another.
type Model struct {
	Config  *hf.Config
	B       Backend
	Embed   *Tensor // vocab × hidden
	Blocks  []Block
	Norm    *Tensor // 1 × hidden
	LMHead  *Tensor // vocab × hidden; the same tensor as Embed when tied
	rope    *Tensor // positions × headDim: cos | sin
	invFreq []float32
	weights *hf.Weights // the mapped files, which backends may use in place
}

// Load opens a Hugging Face model folder (config.json + safetensors) on the
// given backend.
func Load(dir string, b Backend) (*Model, error) {
	cfg, err := hf.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	w, err := hf.OpenWeights(dir)
	if err != nil {
		return nil, err
	}
	m, err := FromWeights(cfg, w, b)
	if err != nil {
		w.Close()
	}
	return m, err
}

// FromWeights builds a model from a parsed config and opened weights. The
// model owns w from then on (a backend may read tensors in place): Close
// releases it.
func FromWeights(cfg *hf.Config, w *hf.Weights, b Backend) (*Model, error) {
	m := &Model{Config: cfg, B: b, invFreq: cfg.InvFreq(), weights: w}
	H := cfg.Hidden
	get := func(name string, rows, cols int) (*Tensor, error) {
		shape := []int{rows, cols}
		if rows == 1 {
			shape = []int{cols}
		}
		t, err := w.Tensor(name, shape...)
		if err != nil {
			return nil, err
		}
		return b.Weight(t, rows, cols), nil
	}
	var err error
	if m.Embed, err = get("model.embed_tokens.weight", cfg.VocabSize, H); err != nil {
		return nil, err
	}
	if m.Norm, err = get("model.norm.weight", 1, H); err != nil {
		return nil, err
	}
	if cfg.TieEmbeddings {
		m.LMHead = m.Embed
	} else if m.LMHead, err = get("lm_head.weight", cfg.VocabSize, H); err != nil {
		return nil, err
	}
	m.Blocks = make([]Block, cfg.Layers)
	for l := range m.Blocks {
		blk := &m.Blocks[l]
		p := fmt.Sprintf("model.layers.%d.", l)
		if blk.AttnNorm, err = get(p+"input_layernorm.weight", 1, H); err != nil {
			return nil, err
		}
		if blk.MLPNorm, err = get(p+"post_attention_layernorm.weight", 1, H); err != nil {
			return nil, err
		}
		for mod := hf.Module(0); mod < hf.NumModules; mod++ {
			out, in := cfg.LinearShape(mod)
			if blk.Linear[mod], err = get(p+mod.Path()+".weight", out, in); err != nil {
				return nil, err
			}
			if cfg.AttentionBias && mod <= hf.VProj {
				if blk.Bias[mod], err = get(p+mod.Path()+".bias", 1, cfg.LinearOut(mod)); err != nil {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

// mappingReleaser is a backend that wraps weight files' memory maps
// (the Metal backend), which must let go of one before it is unmapped.
type mappingReleaser interface {
	ReleaseMapping(mapping []byte) error
}

// Close waits for the model's queued work and unmaps its weight files; the
// model must not be used after.
func (m *Model) Close() {
	if m.weights == nil {
		return
	}
	m.B.Sync() // queued work may still read the weights; its error is its own caller's
	if r, ok := m.B.(mappingReleaser); ok {
		for _, mp := range m.weights.Mappings() {
			r.ReleaseMapping(mp)
		}
	}
	m.weights.Close()
	m.weights = nil
}

// ropeTable returns the rotary table covering positions [0, n), growing it
// (and uploading it) when a longer sequence arrives.
func (m *Model) ropeTable(n int) *Tensor {
	if m.rope == nil || m.rope.Rows < n {
		rows := max(n, 256)
		if m.rope != nil {
			rows = max(rows, 2*m.rope.Rows)
		}
		t := m.B.NewTensor(hf.F32, rows, m.Config.HeadDim)
		m.B.Upload(t, RopeTable(m.invFreq, rows))
		if m.rope != nil {
			m.B.Free(m.rope) // after the work queued with it
		}
		m.rope = t
	}
	return m.rope
}
