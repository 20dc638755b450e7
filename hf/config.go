package hf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Config is the part of a Hugging Face config.json the transformer needs.
type Config struct {
	Arch          string  // "qwen2" or "llama" (model_type)
	VocabSize     int     // vocab_size
	Hidden        int     // hidden_size
	Intermediate  int     // intermediate_size
	Layers        int     // num_hidden_layers
	Heads         int     // num_attention_heads
	KVHeads       int     // num_key_value_heads (GQA); defaults to Heads
	HeadDim       int     // head_dim; defaults to Hidden/Heads
	RMSNormEps    float32 // rms_norm_eps
	RopeTheta     float64 // rope_theta
	RopeScaling   *RopeScaling
	TieEmbeddings bool // tie_word_embeddings
	MaxPositions  int  // max_position_embeddings
	AttentionBias bool // q/k/v biases: always for qwen2, attention_bias for llama
	BOS           int  // bos_token_id, -1 when absent
	EOS           []int
	TorchDType    string // torch_dtype, informational
}

// RopeScaling is rope_scaling of type "llama3" (the only scaling supported).
type RopeScaling struct {
	Factor         float64
	LowFreqFactor  float64
	HighFreqFactor float64
	OriginalMaxPos int
}

// rawConfig mirrors config.json; pointer fields tell absent from zero.
type rawConfig struct {
	ModelType         string          `json:"model_type"`
	Architectures     []string        `json:"architectures"`
	VocabSize         *int            `json:"vocab_size"`
	HiddenSize        *int            `json:"hidden_size"`
	IntermediateSize  *int            `json:"intermediate_size"`
	NumHiddenLayers   *int            `json:"num_hidden_layers"`
	NumAttentionHeads *int            `json:"num_attention_heads"`
	NumKeyValueHeads  *int            `json:"num_key_value_heads"`
	HeadDim           *int            `json:"head_dim"`
	RMSNormEps        *float64        `json:"rms_norm_eps"`
	RopeTheta         *float64        `json:"rope_theta"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
	MaxPositions      *int            `json:"max_position_embeddings"`
	AttentionBias     *bool           `json:"attention_bias"`
	MLPBias           *bool           `json:"mlp_bias"`
	HiddenAct         *string         `json:"hidden_act"`
	BOSTokenID        json.RawMessage `json:"bos_token_id"`
	EOSTokenID        json.RawMessage `json:"eos_token_id"`
	TorchDType        string          `json:"torch_dtype"`
	SlidingWindow     *bool           `json:"use_sliding_window"`
}

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses the contents of a config.json.
func ParseConfig(data []byte) (*Config, error) {
	var r rawConfig
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("not a valid config.json: %w", err)
	}
	c := &Config{Arch: r.ModelType, TorchDType: r.TorchDType, BOS: -1}
	switch r.ModelType {
	case "qwen2":
		c.AttentionBias = true
		c.TieEmbeddings = false
		c.RopeTheta = 10000
	case "llama", "mistral":
		c.Arch = "llama"
		c.TieEmbeddings = false
		c.RopeTheta = 10000
		if r.AttentionBias != nil {
			c.AttentionBias = *r.AttentionBias
		}
		if r.MLPBias != nil && *r.MLPBias {
			return nil, fmt.Errorf("mlp_bias=true is not supported")
		}
	case "":
		return nil, fmt.Errorf("model_type is missing")
	default:
		return nil, fmt.Errorf("unsupported model_type %q (supported: qwen2, llama, mistral)", r.ModelType)
	}
	if r.HiddenAct != nil && *r.HiddenAct != "silu" {
		return nil, fmt.Errorf("hidden_act %q is not supported (only silu)", *r.HiddenAct)
	}
	if r.SlidingWindow != nil && *r.SlidingWindow {
		return nil, fmt.Errorf("use_sliding_window=true is not supported")
	}
	ints := []struct {
		name string
		src  *int
		dst  *int
	}{
		{"vocab_size", r.VocabSize, &c.VocabSize},
		{"hidden_size", r.HiddenSize, &c.Hidden},
		{"intermediate_size", r.IntermediateSize, &c.Intermediate},
		{"num_hidden_layers", r.NumHiddenLayers, &c.Layers},
		{"num_attention_heads", r.NumAttentionHeads, &c.Heads},
	}
	for _, f := range ints {
		if f.src == nil {
			return nil, fmt.Errorf("%s is missing", f.name)
		}
		if *f.src <= 0 || *f.src > 1<<24 {
			return nil, fmt.Errorf("%s = %d is out of range", f.name, *f.src)
		}
		*f.dst = *f.src
	}
	c.KVHeads = c.Heads
	if r.NumKeyValueHeads != nil {
		c.KVHeads = *r.NumKeyValueHeads
	}
	if c.KVHeads <= 0 || c.Heads%c.KVHeads != 0 {
		return nil, fmt.Errorf("num_key_value_heads = %d must be positive and divide num_attention_heads = %d", c.KVHeads, c.Heads)
	}
	if r.HeadDim != nil {
		c.HeadDim = *r.HeadDim
	} else {
		if c.Hidden%c.Heads != 0 {
			return nil, fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d and head_dim is absent", c.Hidden, c.Heads)
		}
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 || c.HeadDim > 1024 {
		return nil, fmt.Errorf("head_dim = %d must be even and in (0, 1024]", c.HeadDim)
	}
	c.RMSNormEps = 1e-6
	if r.RMSNormEps != nil {
		if !(*r.RMSNormEps > 0) || *r.RMSNormEps > 1 {
			return nil, fmt.Errorf("rms_norm_eps = %g is out of range", *r.RMSNormEps)
		}
		c.RMSNormEps = float32(*r.RMSNormEps)
	}
	if r.RopeTheta != nil {
		if !(*r.RopeTheta > 0) || math.IsInf(*r.RopeTheta, 0) {
			return nil, fmt.Errorf("rope_theta = %g is out of range", *r.RopeTheta)
		}
		c.RopeTheta = *r.RopeTheta
	}
	if r.TieWordEmbeddings != nil {
		c.TieEmbeddings = *r.TieWordEmbeddings
	}
	c.MaxPositions = 32768
	if r.MaxPositions != nil {
		if *r.MaxPositions <= 0 {
			return nil, fmt.Errorf("max_position_embeddings = %d is out of range", *r.MaxPositions)
		}
		c.MaxPositions = *r.MaxPositions
	}
	var err error
	if c.RopeScaling, err = parseRopeScaling(r.RopeScaling); err != nil {
		return nil, err
	}
	bos, err := parseTokenIDs("bos_token_id", r.BOSTokenID)
	if err != nil {
		return nil, err
	}
	if len(bos) > 0 {
		c.BOS = bos[0]
	}
	if c.EOS, err = parseTokenIDs("eos_token_id", r.EOSTokenID); err != nil {
		return nil, err
	}
	for _, id := range append(append([]int{}, c.EOS...), bos...) {
		if id < 0 || id >= c.VocabSize {
			return nil, fmt.Errorf("special token id %d is outside the vocabulary (%d)", id, c.VocabSize)
		}
	}
	return c, nil
}

func parseRopeScaling(raw json.RawMessage) (*RopeScaling, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s struct {
		Type           string   `json:"type"`
		RopeType       string   `json:"rope_type"`
		Factor         *float64 `json:"factor"`
		LowFreqFactor  *float64 `json:"low_freq_factor"`
		HighFreqFactor *float64 `json:"high_freq_factor"`
		OriginalMax    *int     `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("rope_scaling: %w", err)
	}
	kind := s.RopeType
	if kind == "" {
		kind = s.Type
	}
	switch kind {
	case "default":
		return nil, nil
	case "llama3":
	default:
		return nil, fmt.Errorf("rope_scaling type %q is not supported (only llama3)", kind)
	}
	if s.Factor == nil || s.LowFreqFactor == nil || s.HighFreqFactor == nil || s.OriginalMax == nil {
		return nil, fmt.Errorf("rope_scaling llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
	}
	if !(*s.Factor > 0) || !(*s.LowFreqFactor > 0) || !(*s.HighFreqFactor > *s.LowFreqFactor) || *s.OriginalMax <= 0 {
		return nil, fmt.Errorf("rope_scaling llama3 values are out of range")
	}
	return &RopeScaling{Factor: *s.Factor, LowFreqFactor: *s.LowFreqFactor, HighFreqFactor: *s.HighFreqFactor, OriginalMaxPos: *s.OriginalMax}, nil
}

// parseTokenIDs reads a token id field that may be null, a number or a list.
func parseTokenIDs(name string, raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("%s must be an integer or a list of integers", name)
	}
	return many, nil
}

// InvFreq returns the rotary inverse frequencies (HeadDim/2 values), computed
// in float32 as transformers does, with llama3 scaling applied when set.
func (c *Config) InvFreq() []float32 {
	half := c.HeadDim / 2
	inv := make([]float32, half)
	for i := range inv {
		exp := float32(2*i) / float32(c.HeadDim)
		inv[i] = 1 / float32(math.Pow(c.RopeTheta, float64(exp)))
	}
	s := c.RopeScaling
	if s == nil {
		return inv
	}
	factor := float32(s.Factor)
	lowWave := float32(s.OriginalMaxPos) / float32(s.LowFreqFactor)
	highWave := float32(s.OriginalMaxPos) / float32(s.HighFreqFactor)
	for i, f := range inv {
		wave := 2 * math.Pi / f
		scaled := f
		if wave > lowWave {
			scaled = f / factor
		}
		if !(wave < highWave) && !(wave > lowWave) {
			smooth := (float32(s.OriginalMaxPos)/wave - float32(s.LowFreqFactor)) / float32(s.HighFreqFactor-s.LowFreqFactor)
			scaled = (1-smooth)*scaled/factor + smooth*scaled
		}
		inv[i] = scaled
	}
	return inv
}
