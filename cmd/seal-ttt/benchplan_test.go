package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/plan"
)

// configOnly copies the tiny Qwen2 fixture's config.json, and nothing
// else, into a folder of its own: the plan must not need the weights.
func configOnly(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "nn", "testdata", "models", "qwen2_tied", "f32", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBenchPlan: bench --plan prints the plan of a request from a config
// alone. The fixture (hidden 64, intermediate 128, 2 layers, 4 heads of 16,
// 2 key/value heads, vocabulary 512, tied, q/k/v biases, float32) has
// 2·(36,864 weights + 128 norm + 128 bias) + 512·64 + 64 = 107,072
// parameters: 418.2 KiB at 4 bytes each.
func TestBenchPlan(t *testing.T) {
	dir := configOnly(t)
	phases := []string{"baseline prefill", "baseline decode", "training fwd+bwd", "optimizer", "adapted prefill", "adapted decode", "total"}
	shape := []string{"--max_seq_length", "256", "--question_tokens", "32", "--eval_max_tokens", "16"}

	// Where recomputation starts to pay: between the two training peaks.
	cfg, err := hf.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := plan.Model{Cfg: cfg, Backend: plan.Metal, DType: hf.F32}
	p := &plan.Plan{Model: m}
	mb := plan.Micro{Rows: 1, Width: 256, LoRA: plan.LoRA{Rank: 32, Targets: lora.DefaultTargets("qwen2")}}
	between := (2*m.WeightBytes() + p.TrainBytes(mb, false) + p.TrainBytes(mb, true)) / 2

	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"one chip", []string{"--chip", "m2 max", "--max_memory", "1GiB"},
			append([]string{"1.07e+05 parameters", "backend: metal", "weights 418.2 KiB at 4 bytes per parameter", "20 micro-batches, 20 optimizer steps",
				"activation checkpointing: not needed", "fits the limit", "M2 Max bound", "limited by", "A plan, not a measurement"}, phases...)},
		{"every chip", []string{"--max_memory", "1GiB"}, []string{"M1 Ultra", "M3 Pro", "M4 Max", "roofline lower bound"}},
		{"checkpointing", []string{"--chip", "M4", "--max_memory", strconv.FormatInt(between, 10)},
			[]string{"activation checkpointing: chosen", "fits the limit"}},
		{"cpu", []string{"--backend", "cpu", "--chip", "M1", "--max_memory", "1GiB"}, []string{"backend: cpu (asked for)", "at 4 bytes per parameter", "whose peak the table does not give"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"bench", "--plan", "--model", dir}, shape...), c.args...)
			out, err := runSeal(t, args...)
			if err != nil {
				t.Fatalf("exit %v\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	for _, bad := range [][]string{{"--chip", "M4 Ultra"}, {"--max_seq_length", "4096"}, {"--max_memory", "100KiB"}, {"--backend", "tpu"}} {
		args := append(append([]string{"bench", "--plan", "--model", dir}, shape...), bad...)
		if out, err := runSeal(t, args...); err == nil {
			t.Errorf("%v accepted:\n%s", bad, out)
		}
	}
}
