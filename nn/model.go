package nn

import (
	"fmt"
)

// Module names one of the seven linear layers of a transformer block.
type Module int

// The linear layers of a block, in Hugging Face's names (see Module.String).
const (
	QProj Module = iota
	KProj
	VProj
	OProj
	GateProj
	UpProj
	DownProj
	NumModules
)

var moduleNames = [NumModules]string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// String returns the module's Hugging Face name, e.g. "q_proj".
func (m Module) String() string { return moduleNames[m] }

// Path returns the module's path inside a block, e.g. "self_attn.q_proj".
func (m Module) Path() string {
	if m <= OProj {
		return "self_attn." + moduleNames[m]
	}
	return "mlp." + moduleNames[m]
}

// ParseModule returns the module with the given Hugging Face name.
func ParseModule(name string) (Module, bool) {
	for i, n := range moduleNames {
		if n == name {
			return Module(i), true
		}
	}
	return 0, false
}

// Block holds one transformer block's weights. Linear weights are stored
// [out, in] as in Hugging Face; Bias entries are nil where a layer has none.
type Block struct {
	AttnNorm, MLPNorm *Tensor
	Linear            [NumModules]*Tensor
	Bias              [NumModules]*Tensor
}

// Model is a loaded decoder-only transformer (Qwen2 or Llama family). Its
// weights are read-only: adapters and caches live outside it, so one Model
// serves any number of requests, one after another.
type Model struct {
	Config  *Config
	B       Backend
	Embed   *Tensor // vocab × hidden
	Blocks  []Block
	Norm    *Tensor // 1 × hidden
	LMHead  *Tensor // vocab × hidden; the same tensor as Embed when tied
	rope    *Tensor // positions × headDim: cos | sin
	invFreq []float32
	weights *Weights // the mapped files, which backends may use in place
}

// Load opens a Hugging Face model folder (config.json + safetensors) on the
// given backend.
func Load(dir string, b Backend) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	w, err := OpenWeights(dir)
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
func FromWeights(cfg *Config, w *Weights, b Backend) (*Model, error) {
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
		for mod := Module(0); mod < NumModules; mod++ {
			out, in := cfg.LinearShape(mod)
			if blk.Linear[mod], err = get(p+mod.Path()+".weight", out, in); err != nil {
				return nil, err
			}
			if cfg.AttentionBias && mod <= VProj {
				if blk.Bias[mod], err = get(p+mod.Path()+".bias", 1, cfg.LinearOut(mod)); err != nil {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

// Close unmaps the model's weight files; the model must not be used after.
func (m *Model) Close() {
	if m.weights != nil {
		m.weights.Close()
		m.weights = nil
	}
}

// ropeTable returns the rotary table covering positions [0, n), growing it
// when a longer sequence arrives.
func (m *Model) ropeTable(n int) *Tensor {
	if m.rope == nil || m.rope.Rows < n {
		rows := max(n, 256)
		if m.rope != nil {
			rows = max(rows, 2*m.rope.Rows)
		}
		t := m.B.NewTensor(rows, m.Config.HeadDim)
		copy(t.Data, RopeTable(m.invFreq, rows))
		m.rope = t
	}
	return m.rope
}
