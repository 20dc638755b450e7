// Package lora fine-tunes LoRA adapters on an nn.Model with the semantics of
// PEFT and the Hugging Face Trainer (transformers 4.52.4), as SEAL's TTT
// server uses them: adapter creation and initialisation, SEAL's data
// preparation, AdamW with linear decay and clipping, and PEFT-format files.
package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// Spec says which layers get adapters and how large they are.
type Spec struct {
	Rank    int
	Alpha   float64
	Dropout float64
	// Targets are the adapted modules; empty means PEFT's default for the
	// architecture (q_proj and v_proj for qwen2 and llama).
	Targets []hf.Module
	// Layers, when positive, adapts only the last Layers blocks.
	Layers int
}

// AllLinear lists every linear module of a block ("all-linear" in PEFT).
var AllLinear = []hf.Module{hf.QProj, hf.KProj, hf.VProj, hf.OProj, hf.GateProj, hf.UpProj, hf.DownProj}

// DefaultTargets returns PEFT's default target modules for an architecture.
func DefaultTargets(arch string) []hf.Module { return []hf.Module{hf.QProj, hf.VProj} }

// ParseTargets reads a target-module option: "default", "all-linear", or a
// comma-separated list of module names such as "q_proj,v_proj".
func ParseTargets(s string) ([]hf.Module, error) {
	switch strings.TrimSpace(s) {
	case "", "default":
		return nil, nil
	case "all-linear":
		return AllLinear, nil
	}
	var mods []hf.Module
	for _, name := range strings.Split(s, ",") {
		mod, ok := hf.ParseModule(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("unknown target module %q (want default, all-linear or names among q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)", name)
		}
		mods = append(mods, mod)
	}
	return mods, nil
}

// Validate checks the spec against a model.
func (s Spec) Validate(cfg *hf.Config) error {
	if s.Rank <= 0 || s.Rank > 4096 {
		return fmt.Errorf("lora rank %d must be between 1 and 4096", s.Rank)
	}
	if !(s.Alpha > 0) || math.IsInf(s.Alpha, 0) {
		return fmt.Errorf("lora alpha %g must be positive and finite", s.Alpha)
	}
	if !(s.Dropout >= 0 && s.Dropout < 1) {
		return fmt.Errorf("lora dropout %g must be in [0, 1)", s.Dropout)
	}
	if s.Layers < 0 {
		return fmt.Errorf("lora layers %d must not be negative", s.Layers)
	}
	return nil
}

func (s Spec) targets(cfg *hf.Config) []hf.Module {
	if len(s.Targets) == 0 {
		return DefaultTargets(cfg.Arch)
	}
	return s.Targets
}

// New makes a fresh adapter for m: every targeted module of every adapted
// block gets A (rank × in) drawn as PEFT does (kaiming-uniform with a = √5,
// i.e. uniform in ±1/√in) and B (out × rank) zero, in float32.
func New(m *nn.Model, s Spec, rng *rand.Rand) (*nn.Adapter, error) {
	if err := s.Validate(m.Config); err != nil {
		return nil, err
	}
	first := 0
	if s.Layers > 0 && s.Layers < len(m.Blocks) {
		first = len(m.Blocks) - s.Layers
	}
	targets := s.targets(m.Config)
	ad := nn.NewAdapter(m.B, m.Config, s.Rank, float32(s.Alpha/float64(s.Rank)), float32(s.Dropout), func(l int, mod hf.Module) bool {
		return l >= first && slices.Contains(targets, mod)
	})
	params := make([]float32, ad.Params.Len())
	each(ad, func(_ int, _ hf.Module, lo *nn.LoRA) {
		bound := 1 / math.Sqrt(float64(lo.A.Cols))
		a := params[ad.Offset(lo.A):][:lo.A.Len()]
		for i := range a {
			a[i] = float32((2*rng.Float64() - 1) * bound)
		}
	})
	m.B.Upload(ad.Params, params)
	return ad, nil
}

// each calls f for every LoRA of ad in a fixed order (block, then module).
func each(ad *nn.Adapter, f func(l int, mod hf.Module, lo *nn.LoRA)) {
	for l := range ad.Blocks {
		for mod := hf.Module(0); mod < hf.NumModules; mod++ {
			if lo := ad.Blocks[l][mod]; lo != nil {
				f(l, mod, lo)
			}
		}
	}
}

// Modules returns the sorted names of the adapted modules (e.g. q_proj).
func Modules(ad *nn.Adapter) []string {
	set := map[string]bool{}
	each(ad, func(_ int, mod hf.Module, _ *nn.LoRA) { set[mod.String()] = true })
	var names []string
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
