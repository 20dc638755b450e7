package lora

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
)

// TestPEFTRoundTrip: tools/golden/peftsave wrote an adapter with Save,
// PEFT's PeftModel.from_pretrained loaded it and recorded the adapted
// model's logits; loading the same files here must give the same logits.
func TestPEFTRoundTrip(t *testing.T) {
	m := loadModel(t, "qwen2_untied", cpu.Backend{})
	ad, spec, err := Load(filepath.Join("testdata", "roundtrip", "adapter"), m)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Rank != 4 || spec.Alpha != 8 || spec.Layers != 1 || len(spec.Targets) != 7 {
		t.Fatalf("spec %+v, want rank 4, alpha 8, last layer, all seven modules", spec)
	}
	ids := [][]int32{{1, 17, 300, 45, 46, 99, 511, 3, 250, 251, 7, 8}, {1, 400, 22, 23, 24, 150, 9, 2, 2, 2, 2, 2}}
	mask := [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}}
	logits, err := m.Logits(probeBatch(ids, mask), ad, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := readFloats(t, filepath.Join("testdata", "roundtrip", "peft_logits.safetensors"), "logits", 2, 12, m.Config.VocabSize)
	base, _ := m.Logits(probeBatch(ids, mask), nil, nil)
	// f32 on both sides: 1e-4 as in nn's golden tests. The adapter must also
	// matter, or the comparison proves nothing.
	if d := maxDiff(logits, want); d > 1e-4 {
		t.Errorf("logits with our adapter in PEFT and here differ by %.3g", d)
	}
	if d := maxDiff(base, want); d < 1e-2 {
		t.Errorf("the adapter changes the logits by only %.3g", d)
	}
}

func TestSaveLoad(t *testing.T) {
	m := nn.Builtin(cpu.Backend{})
	spec := Spec{Rank: 3, Alpha: 6, Targets: []hf.Module{hf.KProj, hf.DownProj}, Layers: 2}
	ad, err := New(m, spec, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	params := download(t, m, ad)
	each(ad, func(_ int, _ hf.Module, lo *nn.LoRA) {
		b := part(params, ad, lo.B)
		for i := range b {
			b[i] = float32(i%7) - 3
		}
	})
	m.B.Upload(ad.Params, params)
	dir := t.TempDir()
	if err := Save(dir, m, ad, spec, "builtin"); err != nil {
		t.Fatal(err)
	}
	got, gotSpec, err := Load(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if gotSpec.Rank != 3 || gotSpec.Alpha != 6 || gotSpec.Layers != 2 || len(gotSpec.Targets) != 2 {
		t.Errorf("spec after round trip %+v", gotSpec)
	}
	gotParams := download(t, m, got)
	n := 0
	for l := range ad.Blocks {
		for mod := hf.Module(0); mod < hf.NumModules; mod++ {
			a, b := ad.Blocks[l][mod], got.Blocks[l][mod]
			if (a == nil) != (b == nil) {
				t.Fatalf("block %d %s: present before %v, after %v", l, mod, a != nil, b != nil)
			}
			if a == nil {
				continue
			}
			n++
			if maxDiff(part(params, ad, a.A), part(gotParams, got, b.A)) != 0 || maxDiff(part(params, ad, a.B), part(gotParams, got, b.B)) != 0 || a.Scale != b.Scale {
				t.Errorf("block %d %s changed in the round trip", l, mod)
			}
		}
	}
	if n != 4 { // two targets in each of the last two blocks
		t.Errorf("%d adapted modules, want 4", n)
	}
}

func TestLoadRejects(t *testing.T) {
	m := nn.Builtin(cpu.Backend{})
	good, err := os.ReadFile(filepath.Join("testdata", "roundtrip", "adapter", "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, config, want string
	}{
		{"not json", "{", "not a valid adapter config"},
		{"not lora", strings.Replace(string(good), `"LORA"`, `"IA3"`, 1), "is not LORA"},
		{"dora", strings.Replace(string(good), `"use_dora": false`, `"use_dora": true`, 1), "DoRA"},
		{"rank 0", strings.Replace(string(good), `"r": 4`, `"r": 0`, 1), "must be positive"},
		// The round-trip adapter belongs to a 64-wide model; the built-in
		// model is 128 wide, so the shapes must be refused.
		{"wrong model", string(good), "has shape"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(c.config), 0o644)
			st, _ := os.ReadFile(filepath.Join("testdata", "roundtrip", "adapter", "adapter_model.safetensors"))
			os.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), st, 0o644)
			_, _, err := Load(dir, m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, _, err := Load(t.TempDir(), m); err == nil {
		t.Error("an empty folder loaded")
	}
}
