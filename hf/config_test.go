package hf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigTransformers5 loads the config.json files transformers 5.17
// saved for the tiny fixture models (tools/golden/long.py): rope_theta and
// the llama3 scaling live in rope_parameters, the dtype in dtype.
func TestConfigTransformers5(t *testing.T) {
	cases := []struct {
		name    string
		theta   float64
		scaling *RopeScaling
	}{
		{"qwen2_tied", 10000, nil},
		{"qwen2_untied", 1e6, nil},
		{"llama3", 500000, &RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 64}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := LoadConfig(filepath.Join("testdata", "tf5", c.name))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.RopeTheta != c.theta {
				t.Errorf("rope theta %g, want %g", cfg.RopeTheta, c.theta)
			}
			if (cfg.RopeScaling == nil) != (c.scaling == nil) || c.scaling != nil && *cfg.RopeScaling != *c.scaling {
				t.Errorf("rope scaling %+v, want %+v", cfg.RopeScaling, c.scaling)
			}
			if cfg.TorchDType != "float32" {
				t.Errorf("dtype %q, want float32", cfg.TorchDType)
			}
		})
	}
}

// TestConfigRefusesUnknownMath checks that keys which would change the
// computation, and that the loader does not implement, refuse the model.
func TestConfigRefusesUnknownMath(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "tf5", "qwen2_tied", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	with := func(extra string) []byte {
		s := strings.TrimSpace(string(base))
		return []byte(s[:len(s)-1] + "," + extra + "}")
	}
	cases := []struct {
		name, extra, want string // want "" means it loads
	}{
		{"inert key", `"initializer_range": 0.5`, ""},
		{"neutral pretraining_tp", `"pretraining_tp": 1`, ""},
		{"unknown key", `"rope_interleaved": true`, `unknown key "rope_interleaved"`},
		{"pretraining_tp 2", `"pretraining_tp": 2`, "pretraining_tp = 2"},
		{"attention dropout", `"attention_dropout_x": 0.1`, "unknown key"},
		{"softcapping", `"final_logit_softcapping": 30.0`, "final_logit_softcapping"},
		{"quantized", `"quantization_config": {"quant_method": "gptq"}`, "quantization_config"},
		{"sliding layers", `"layer_types_x": 1`, "unknown key"},
		{"yarn", `"rope_parameters_x": 1`, "unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(with(c.extra))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
	replace := []struct{ name, from, to, want string }{
		{"sliding layer", `"full_attention"`, `"sliding_attention"`, "layer_types[0]"},
		{"yarn rope", `"rope_type": "default"`, `"rope_type": "yarn", "factor": 4.0`, "yarn"},
		{"unknown rope parameter", `"rope_theta": 10000.0,`, `"rope_theta": 10000.0, "beta_fast": 32,`, `unknown key "beta_fast"`},
	}
	for _, c := range replace {
		t.Run(c.name, func(t *testing.T) {
			s := strings.Replace(string(base), c.from, c.to, 1)
			if s == string(base) {
				t.Fatalf("fixture has no %s", c.from)
			}
			if _, err := ParseConfig([]byte(s)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
	t.Run("both thetas disagree", func(t *testing.T) {
		if _, err := ParseConfig(with(`"rope_theta": 500.0`)); err == nil || !strings.Contains(err.Error(), "disagree") {
			t.Fatalf("error %v, want rope thetas that disagree", err)
		}
	})
}
