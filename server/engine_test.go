package server

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/tokenizer"
)

func builtinEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := NewEngine(nn.Builtin(cpu.Backend{}), tokenizer.Bytes(), "builtin", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEngineRejectsBadTraining(t *testing.T) {
	e := builtinEngine(t)
	good := TrainParams{Rank: 4, Alpha: 8, Epochs: 1, LR: 1e-3, BatchSize: 1, GradAccum: 1, MaxSeqLength: 64, Padding: "longest"}
	cases := []struct {
		name string
		edit func(*TrainParams)
		want string
	}{
		{"unknown module", func(p *TrainParams) { p.TargetModules = []string{"qkv_proj"} }, "unknown target module"},
		{"rank 0", func(p *TrainParams) { p.Rank = 0 }, "lora rank 0"},
		{"dropout 1", func(p *TrainParams) { p.Dropout = 1 }, "dropout"},
		{"padding", func(p *TrainParams) { p.Padding = "left" }, "unknown padding mode"},
		{"batch 0", func(p *TrainParams) { p.BatchSize = 0 }, "batch_size"},
		{"max length 1", func(p *TrainParams) { p.MaxSeqLength = 1 }, "max_seq_length"},
	}
	for _, c := range cases {
		p := good
		c.edit(&p)
		_, _, err := e.FineTune(context.Background(), []string{"some text"}, p, nil)
		var se *Error
		if !errors.As(err, &se) || se.Type != "ValueError" || !strings.Contains(se.Msg, c.want) {
			t.Errorf("%s: error %v, want a ValueError about %q", c.name, err, c.want)
		}
	}
	if _, err := e.Generate(context.Background(), nil, []string{"hi"}, GenParams{MaxTokens: 4, TopP: 1, Stop: []string{"<|nope|>"}}); err == nil {
		t.Error("an unknown stop token was accepted")
	}
}

// TestEngineCycle runs a real TTT cycle on the built-in model: train on one
// fact, save the adapter in PEFT format, and check that the adapted model's
// answer changed while the base model's did not.
func TestEngineCycle(t *testing.T) {
	e := builtinEngine(t)
	ctx := context.Background()
	prompt := []string{"Q: Who keeps the lighthouse?\nA:"}
	gen := GenParams{MaxTokens: 8, TopP: 1}
	before, err := e.Generate(ctx, nil, prompt, gen)
	if err != nil {
		t.Fatal(err)
	}
	seed := int64(3)
	var progress []TrainProgress
	ad, st, err := e.FineTune(ctx, []string{"Q: Who keeps the lighthouse?\nA: Oda"}, TrainParams{
		Rank: 8, Alpha: 16, Epochs: 20, LR: 1e-2, BatchSize: 1, GradAccum: 1, MaxSeqLength: 64, Padding: "max_length",
		TargetModules: []string{"all-linear"}, Seed: seed,
	}, func(p TrainProgress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps != 20 || !(st.LastLoss < st.FirstLoss) || len(progress) == 0 || progress[len(progress)-1].Step != 20 {
		t.Fatalf("stats %+v, progress %v", st, progress)
	}
	after, err := e.Generate(ctx, ad, prompt, gen)
	if err != nil {
		t.Fatal(err)
	}
	if after[0].Text != " Oda" {
		t.Errorf("adapted answer %q, want %q (memorised, then eos)", after[0].Text, " Oda")
	}
	again, _ := e.Generate(ctx, nil, prompt, gen)
	if again[0] != before[0] {
		t.Errorf("the base model changed: %q then %q", before[0].Text, again[0].Text)
	}
	dir := filepath.Join(t.TempDir(), "final_adapter")
	if err := ad.SavePEFT(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg["r"] != 8.0 || cfg["peft_type"] != "LORA" {
		t.Errorf("adapter_config.json %s", raw)
	}
	ad.Release()
}
