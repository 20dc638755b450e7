package lora

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
	"github.com/nlpodyssey/safetensors"
)

// PEFT's file names and the key layout of a LoRA on a causal LM.
const (
	configFile  = "adapter_config.json"
	weightsFile = "adapter_model.safetensors"
	keyPrefix   = "base_model.model.model.layers."
)

var keyRE = regexp.MustCompile(`^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$`)

// peftConfig is the adapter_config.json PEFT writes for a LoRA (the fields
// it needs to load one; PEFT fills in the rest with defaults).
type peftConfig struct {
	AlphaPattern      map[string]any `json:"alpha_pattern"`
	AutoMapping       any            `json:"auto_mapping"`
	BaseModel         string         `json:"base_model_name_or_path"`
	Bias              string         `json:"bias"`
	FanInFanOut       bool           `json:"fan_in_fan_out"`
	InferenceMode     bool           `json:"inference_mode"`
	InitLoraWeights   bool           `json:"init_lora_weights"`
	LayersPattern     any            `json:"layers_pattern"`
	LayersToTransform []int          `json:"layers_to_transform"`
	LoraAlpha         float64        `json:"lora_alpha"`
	LoraDropout       float64        `json:"lora_dropout"`
	ModulesToSave     any            `json:"modules_to_save"`
	PeftType          string         `json:"peft_type"`
	R                 int            `json:"r"`
	RankPattern       map[string]any `json:"rank_pattern"`
	Revision          any            `json:"revision"`
	TargetModules     any            `json:"target_modules"`
	TaskType          string         `json:"task_type"`
	UseDora           bool           `json:"use_dora"`
	UseRslora         bool           `json:"use_rslora"`
}

// Save writes ad as a PEFT LoRA adapter (adapter_config.json and
// adapter_model.safetensors, float32) that PeftModel.from_pretrained loads,
// downloading ad from m's backend.
// baseModel is recorded as base_model_name_or_path.
func Save(dir string, m *nn.Model, ad *nn.Adapter, s Spec, baseModel string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	cfg := peftConfig{
		AlphaPattern: map[string]any{}, RankPattern: map[string]any{}, BaseModel: baseModel, Bias: "none",
		InferenceMode: true, InitLoraWeights: true, LoraAlpha: s.Alpha, LoraDropout: s.Dropout,
		PeftType: "LORA", R: s.Rank, TargetModules: Modules(ad), TaskType: "CAUSAL_LM",
	}
	if s.Layers > 0 && s.Layers < len(ad.Blocks) {
		for l := len(ad.Blocks) - s.Layers; l < len(ad.Blocks); l++ {
			cfg.LayersToTransform = append(cfg.LayersToTransform, l)
		}
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	params := make([]float32, ad.Params.Len())
	if err := m.B.Download(params, ad.Params); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	views := map[string]safetensors.TensorView{}
	var verr error
	each(ad, func(l int, mod hf.Module, lo *nn.LoRA) {
		for _, p := range []struct {
			ab string
			t  *nn.Tensor
		}{{"A", lo.A}, {"B", lo.B}} {
			data := make([]byte, 4*p.t.Len())
			for i, v := range params[ad.Offset(p.t):][:p.t.Len()] {
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
			}
			v, err := safetensors.NewTensorView(safetensors.F32, []uint64{uint64(p.t.Rows), uint64(p.t.Cols)}, data)
			if err != nil {
				verr = err
			}
			views[fmt.Sprintf("%s%d.%s.lora_%s.weight", keyPrefix, l, mod.Path(), p.ab)] = v
		}
	})
	if verr != nil {
		return fmt.Errorf("save adapter: %w", verr)
	}
	st, err := safetensors.Serialize(views, map[string]string{"format": "pt"})
	if err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, weightsFile), st, 0o644); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, configFile), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	return nil
}

// Load reads a PEFT LoRA adapter for model m: any targets, ranks and layers,
// float32/float16/bfloat16 weights. It returns the adapter (gradients
// allocated, ready to train further) and its spec.
func Load(dir string, m *nn.Model) (*nn.Adapter, Spec, error) {
	var s Spec
	cpath := filepath.Join(dir, configFile)
	raw, err := os.ReadFile(cpath)
	if err != nil {
		return nil, s, fmt.Errorf("load adapter: %w", err)
	}
	var cfg peftConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, s, fmt.Errorf("%s: not a valid adapter config: %w", cpath, err)
	}
	switch {
	case cfg.PeftType != "LORA":
		return nil, s, fmt.Errorf("%s: peft_type %q is not LORA", cpath, cfg.PeftType)
	case cfg.UseDora:
		return nil, s, fmt.Errorf("%s: DoRA adapters are not supported", cpath)
	case cfg.FanInFanOut:
		return nil, s, fmt.Errorf("%s: fan_in_fan_out adapters are not supported", cpath)
	case cfg.R <= 0:
		return nil, s, fmt.Errorf("%s: r = %d must be positive", cpath, cfg.R)
	case len(cfg.RankPattern) > 0 || len(cfg.AlphaPattern) > 0:
		return nil, s, fmt.Errorf("%s: rank_pattern and alpha_pattern are not supported", cpath)
	}
	s = Spec{Rank: cfg.R, Alpha: cfg.LoraAlpha, Dropout: cfg.LoraDropout}
	scale := float32(cfg.LoraAlpha / float64(cfg.R))
	if cfg.UseRslora {
		scale = float32(cfg.LoraAlpha / math.Sqrt(float64(cfg.R)))
	}
	w, err := hf.OpenWeightsFile(filepath.Join(dir, weightsFile))
	if err != nil {
		return nil, s, err
	}
	defer w.Close()
	// First the layout: which (layer, module) pairs have which halves.
	type key struct {
		l   int
		mod hf.Module
	}
	halves := map[key]string{}
	first := len(m.Blocks)
	for _, name := range w.Names() {
		k := keyRE.FindStringSubmatch(name)
		if k == nil {
			return nil, s, fmt.Errorf("%s: unexpected tensor %q (only LoRA A/B weights of decoder layers are supported)", weightsFile, name)
		}
		l, _ := strconv.Atoi(k[1])
		mod, ok := hf.ParseModule(k[3])
		if !ok || mod.Path() != k[2]+"."+k[3] || l >= len(m.Blocks) {
			return nil, s, fmt.Errorf("%s: tensor %q does not match the model (%d layers)", weightsFile, name, len(m.Blocks))
		}
		first = min(first, l)
		halves[key{l, mod}] += k[4]
	}
	for k, h := range halves {
		if h != "AB" && h != "BA" {
			return nil, s, fmt.Errorf("%s: layer %d %s has only one of lora_A and lora_B", weightsFile, k.l, k.mod)
		}
	}
	ad := nn.NewAdapter(m.B, m.Config, cfg.R, scale, float32(cfg.LoraDropout), func(l int, mod hf.Module) bool { return halves[key{l, mod}] != "" })
	params := make([]float32, ad.Params.Len())
	var ferr error
	each(ad, func(l int, mod hf.Module, lo *nn.LoRA) {
		for _, p := range []struct {
			ab string
			t  *nn.Tensor
		}{{"A", lo.A}, {"B", lo.B}} {
			t, err := w.Tensor(fmt.Sprintf("%s%d.%s.lora_%s.weight", keyPrefix, l, mod.Path(), p.ab), p.t.Rows, p.t.Cols)
			if err != nil {
				ferr = cmp.Or(ferr, err)
				continue
			}
			t.Floats(params[ad.Offset(p.t):][:p.t.Len()])
		}
	})
	if ferr != nil {
		ad.Free(m.B)
		return nil, s, ferr
	}
	m.B.Upload(ad.Params, params)
	var targets []hf.Module
	for l := range ad.Blocks {
		for mod := hf.Module(0); mod < hf.NumModules; mod++ {
			lo := ad.Blocks[l][mod]
			if lo == nil {
				continue
			}
			if !slices.Contains(targets, mod) {
				targets = append(targets, mod)
			}
		}
	}
	if len(targets) == 0 {
		return nil, s, fmt.Errorf("%s: no LoRA weights", weightsFile)
	}
	s.Targets = targets
	if first > 0 {
		s.Layers = len(m.Blocks) - first
	}
	return ad, s, nil
}
