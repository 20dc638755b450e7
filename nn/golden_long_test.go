package nn_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// longBatch is one batch of tools/golden/long.py: a full row and a row
// right-padded with eos.
type longBatch struct {
	InputIDs      [][]int32 `json:"input_ids"`
	AttentionMask [][]int   `json:"attention_mask"`
}

// withConfig returns a folder holding the f32 weights of model name and the
// given config.json.
func withConfig(t *testing.T, name, config string) string {
	t.Helper()
	src := filepath.Join("testdata", "models", name, "f32")
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "config.json" {
			continue
		}
		abs, err := filepath.Abs(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGoldenLongLogits compares logits at 64 and 500 tokens, where attention
// runs blocked, with transformers; each model loads once with the config.json
// the fixtures were made from (transformers 4.52's layout) and once with the
// one transformers 5 writes (rope_parameters, dtype).
func TestGoldenLongLogits(t *testing.T) {
	for _, name := range goldenNames {
		dir := filepath.Join("testdata", "long", name)
		raw, err := os.ReadFile(filepath.Join(dir, "golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		var batches map[string]json.RawMessage
		if err := json.Unmarshal(raw, &batches); err != nil {
			t.Fatal(err)
		}
		ref, err := hf.OpenWeightsFile(filepath.Join(dir, "golden.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ref.Close)
		configs := map[string]string{
			"tf4": filepath.Join("testdata", "models", name, "f32", "config.json"),
			"tf5": filepath.Join(dir, "tf5_config.json"),
		}
		for _, layout := range []string{"tf4", "tf5"} {
			for _, backend := range testBackends(t) {
				m, err := nn.Load(withConfig(t, name, configs[layout]), backend)
				if err != nil {
					t.Fatalf("%s with the %s config: %v", name, layout, err)
				}
				for _, key := range []string{"T64", "T500"} {
					t.Run(name+"/"+layout+"/"+key+"/"+backend.Name(), func(t *testing.T) {
						var b longBatch
						if err := json.Unmarshal(batches[key], &b); err != nil {
							t.Fatal(err)
						}
						logits, err := m.Logits(paddedBatch(b.InputIDs, b.AttentionMask), nil, nil)
						if err != nil {
							t.Fatal(err)
						}
						want, err := ref.Tensor("logits."+key, len(b.InputIDs), len(b.InputIDs[0]), m.Config.VocabSize)
						if err != nil {
							t.Fatal(err)
						}
						// float32 on both sides; what differs is summation order
						// (blocked attention keeps a running maximum and sum) over
						// up to 500 keys. Observed ≤ 4.3e-6 on logits of magnitude
						// ≲ 10; 5e-5 is over ten times that, while a wrong position,
						// a mis-scaled rope or a leaked pad key moves logits by > 1e-2
						// (the default rope base instead of the config's: 1.9).
						if d := maxAbsDiff(t, logits, want); d > 5e-5 {
							t.Errorf("max |logit difference| = %.3g, want ≤ 5e-5", d)
						} else {
							t.Logf("max |logit difference| = %.3g", d)
						}
					})
				}
			}
		}
	}
}
