package hf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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
	DType             string          `json:"dtype"`
	SlidingWindow     *bool           `json:"use_sliding_window"`
	RopeParameters    json.RawMessage `json:"rope_parameters"`
}

// configKeys are the config.json keys ParseConfig reads: rawConfig's JSON
// names, so a field added there is known here.
var configKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[rawConfig]()
	for i := range t.NumField() {
		keys[t.Field(i).Tag.Get("json")] = true
	}
	return keys
}()

// inertKeys are config.json keys that do not change what the model computes
// at inference or in LoRA training as done here (training-time settings
// such as initializer_range only matter for freshly initialised weights),
// and keys whose only effect depends on a key read above (sliding_window
// acts only with use_sliding_window).
var inertKeys = map[string]bool{
	"transformers_version": true, "initializer_range": true, "use_cache": true,
	"pad_token_id": true, "max_window_layers": true, "sliding_window": true,
	"_name_or_path": true, "return_dict": true, "output_attentions": true,
	"output_hidden_states": true, "torchscript": true, "use_return_dict": true,
	"id2label": true, "label2id": true, "problem_type": true, "tokenizer_class": true,
	"chunk_size_feed_forward": true, "is_encoder_decoder": true, "is_decoder": true,
	"add_cross_attention": true, "tie_encoder_decoder": true, "prefix": true,
	"task_specific_params": true, "finetuning_task": true, "decoder_start_token_id": true,
	"sep_token_id": true, "use_mrope": true,
}

// neutralKeys are keys that change the math unless they hold the value
// given here (as a JSON literal); another value is refused.
var neutralKeys = map[string][]string{
	"attention_dropout":       {"0", "0.0"},
	"pretraining_tp":          {"1"},
	"partial_rotary_factor":   {"1", "1.0"},
	"quantization_config":     {"null"},
	"attn_logit_softcapping":  {"null"},
	"final_logit_softcapping": {"null"},
	"query_pre_attn_scalar":   {"null"},
	"embedding_multiplier":    {"1", "1.0", "null"},
	"logits_scaling":          {"1", "1.0", "null"},
	"residual_multiplier":     {"1", "1.0", "null"},
	"attention_multiplier":    {"null"},
}

// checkKeys refuses config keys that could change the math and are not
// understood. layer_types must name full attention for every layer.
func checkKeys(data []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return fmt.Errorf("not a valid config.json: %w", err)
	}
	for key, raw := range all {
		v := strings.TrimSpace(string(raw))
		switch {
		case configKeys[key], inertKeys[key]:
		case key == "layer_types":
			var types []string
			if err := json.Unmarshal(raw, &types); err != nil && v != "null" {
				return fmt.Errorf("layer_types must be a list of strings")
			}
			for i, t := range types {
				if t != "full_attention" {
					return fmt.Errorf("layer_types[%d] = %q is not supported (only full_attention)", i, t)
				}
			}
		case neutralKeys[key] != nil:
			if !slices.Contains(neutralKeys[key], v) {
				return fmt.Errorf("%s = %s is not supported (only %s)", key, v, strings.Join(neutralKeys[key], " or "))
			}
		default:
			return fmt.Errorf("unknown key %q: it may change what the model computes, so the model is refused rather than run without it", key)
		}
	}
	return nil
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
	if c.TorchDType == "" {
		c.TorchDType = r.DType // transformers 5 writes dtype
	}
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
	if err := c.ropeParameters(r); err != nil {
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
	if err := checkKeys(data); err != nil {
		return nil, err
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
	case "default", "":
		if s.Factor != nil || s.LowFreqFactor != nil || s.HighFreqFactor != nil || s.OriginalMax != nil {
			return nil, fmt.Errorf("rope type %q with scaling fields is not understood", kind)
		}
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

// ropeParameters applies transformers 5's rope_parameters: rope_theta and
// rope_type inside one object, with the scaling's own fields beside them.
// Where config.json also has the 4.x keys, both must agree.
func (c *Config) ropeParameters(r rawConfig) error {
	if len(r.RopeParameters) == 0 || string(r.RopeParameters) == "null" {
		return nil
	}
	var p struct {
		RopeTheta *float64 `json:"rope_theta"`
	}
	if err := json.Unmarshal(r.RopeParameters, &p); err != nil {
		return fmt.Errorf("rope_parameters: %w", err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(r.RopeParameters, &keys); err != nil {
		return fmt.Errorf("rope_parameters: %w", err)
	}
	for k := range keys {
		switch k {
		case "rope_theta", "rope_type", "type", "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings":
		default:
			return fmt.Errorf("rope_parameters: unknown key %q", k)
		}
	}
	if p.RopeTheta != nil {
		if !(*p.RopeTheta > 0) || math.IsInf(*p.RopeTheta, 0) {
			return fmt.Errorf("rope_parameters.rope_theta = %g is out of range", *p.RopeTheta)
		}
		if r.RopeTheta != nil && *r.RopeTheta != *p.RopeTheta {
			return fmt.Errorf("rope_theta = %g and rope_parameters.rope_theta = %g disagree", *r.RopeTheta, *p.RopeTheta)
		}
		c.RopeTheta = *p.RopeTheta
	}
	scaling, err := parseRopeScaling(r.RopeParameters)
	if err != nil {
		return fmt.Errorf("rope_parameters: %w", err)
	}
	if len(r.RopeScaling) > 0 && string(r.RopeScaling) != "null" && (scaling == nil) != (c.RopeScaling == nil) ||
		scaling != nil && c.RopeScaling != nil && *scaling != *c.RopeScaling {
		return fmt.Errorf("rope_scaling and rope_parameters disagree")
	}
	if scaling != nil {
		c.RopeScaling = scaling
	}
	return nil
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
