package server

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/tokenizer"
)

// budgetEngine is the built-in model with budget bytes for requests.
func budgetEngine(t *testing.T, budget int64) *Engine {
	t.Helper()
	m := nn.Builtin(cpu.Backend{})
	e, err := NewEngine(m, tokenizer.Bytes(), "builtin", PlanModel(m).WeightBytes()+budget, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantValueError(t *testing.T, err error, parts ...string) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) || se.Type != "ValueError" {
		t.Fatalf("error %v, want a ValueError", err)
	}
	for _, p := range parts {
		if !strings.Contains(se.Msg, p) {
			t.Errorf("error %q does not say %q", se.Msg, p)
		}
	}
}

// TestEngineCheck: what cannot be done is refused before any work, with
// the limit named.
func TestEngineCheck(t *testing.T) {
	e := budgetEngine(t, 256<<20)
	gen := GenParams{MaxTokens: 64, TopP: 1}
	train := TrainParams{Rank: 32, Alpha: 64, Epochs: 1, LR: 1e-3, BatchSize: 4096, GradAccum: 1, MaxSeqLength: 2048, Padding: "max_length"}

	// 4096 one-letter sequences in one batch of 4096 rows × 2048 tokens.
	seqs := make([]string, 4096)
	for i := range seqs {
		seqs[i] = "a"
	}
	wantValueError(t, e.Check(nil, seqs, gen, &train), "4096 sequences of 2048 tokens", "256.0 MiB", "batch_size")
	// Padding "longest" makes the same rows one token wide: they fit.
	train.Padding = "longest"
	if err := e.Check(nil, seqs, gen, &train); err != nil {
		t.Errorf("longest padding: %v", err)
	}
	// A prompt too long for the model's 4096 positions.
	long := answerPrompt(strings.Repeat("x", 4100), false, false)
	wantValueError(t, e.Check([]string{"short?", long}, nil, gen, nil), "eval_questions[1]", "4096 positions", "at most 4032 tokens")
	// Many questions: planned in groups, so their number does not matter.
	prompts := make([]string, 30000)
	for i := range prompts {
		prompts[i] = answerPrompt("q?", false, false)
	}
	prompts = append(prompts, answerPrompt(strings.Repeat("y", 3950), false, false))
	if err := e.Check(prompts, nil, gen, nil); err != nil {
		t.Errorf("30,001 questions: %v", err)
	}
	// A budget too small for even one answer.
	wantValueError(t, budgetEngine(t, 1<<10).Check(prompts[:1], nil, gen, nil), "over the budget of 1.0 KiB")
	// Training settings the model cannot take are refused here too.
	bad := TrainParams{Rank: 4, Alpha: 8, Epochs: 1, LR: 1e-3, BatchSize: 1, GradAccum: 1, MaxSeqLength: 64, Padding: "longest", TargetModules: []string{"qkv_proj"}}
	wantValueError(t, e.Check(nil, []string{"a"}, gen, &bad), "unknown target module")
}

// TestEngineGeneratesInGroups: a budget that allows only small groups gives
// the answers a large one gives.
func TestEngineGeneratesInGroups(t *testing.T) {
	prompts := []string{"The capital of", "Once upon a time", "1 2 3", "Question: who?\nAnswer:\n", "z"}
	gen := GenParams{MaxTokens: 8, TopP: 1}
	big := budgetEngine(t, 1<<30)
	small := budgetEngine(t, 400<<10)
	if g := small.plan.GroupSize(len(prompts), 30, gen.MaxTokens); g < 1 || g >= len(prompts) {
		t.Fatalf("the small budget allows groups of %d; the test needs 1 to %d", g, len(prompts)-1)
	}
	want, err := big.Generate(context.Background(), nil, prompts, gen)
	if err != nil {
		t.Fatal(err)
	}
	got, err := small.Generate(context.Background(), nil, prompts, gen)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("in groups %v, at once %v", got, want)
	}
}

func TestEngineLoadChecks(t *testing.T) {
	e := budgetEngine(t, 1<<30)
	c := DefaultConfig()
	if err := e.CheckConfig(c); err != nil {
		t.Errorf("SEAL's defaults: %v", err)
	}
	c.MaxTokens = 4096
	if err := e.CheckConfig(c); err == nil || !strings.Contains(err.Error(), "--eval_max_tokens 4096 must be between 1 and 4095") {
		t.Errorf("eval_max_tokens 4096: %v", err)
	}
	c = DefaultConfig()
	c.MaxSeqLength = 5000
	if err := e.CheckConfig(c); err == nil {
		t.Error("max_seq_length over the model's positions accepted")
	}
	// A tokenizer with more ids than the model's vocabulary.
	cfg := *nn.BuiltinConfig()
	cfg.VocabSize = 100
	m, err := nn.FromWeights(&cfg, hf.RandomWeights(&cfg, 1), cpu.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(m, tokenizer.Bytes(), "small", 1<<30, nil); err == nil || !strings.Contains(err.Error(), "259 ids") {
		t.Errorf("tokenizer larger than the vocabulary: %v", err)
	}
	if _, err := NewEngine(m, tokenizer.Bytes(), "small", 1<<10, nil); err == nil {
		t.Error("a budget below the weights accepted")
	}
}

// TestEngineRecomputesWhenNeeded: training that fits the budget only with
// activations recomputed runs checkpointed; with room to keep them, it
// does not.
func TestEngineRecomputesWhenNeeded(t *testing.T) {
	p := TrainParams{Rank: 4, Alpha: 8, Epochs: 1, LR: 1e-3, BatchSize: 2, GradAccum: 1, MaxSeqLength: 256, Padding: "max_length"}
	seqs := []string{"The observatory stands on Mount Oravel.", "Its cat is called Perihelion."}
	probe := budgetEngine(t, 1<<40)
	mb := probe.micro(lora.Spec{Rank: 4, Alpha: 8}, lora.Data{MaxSeqLength: 256, Padding: lora.MaxLength}, p, len(seqs), 0)
	keep, recompute := probe.plan.TrainBytes(mb, false), probe.plan.TrainBytes(mb, true)
	if recompute >= keep {
		t.Fatalf("recomputing plans %d bytes, keeping %d", recompute, keep)
	}
	for _, c := range []struct {
		budget int64
		want   bool
	}{{keep, false}, {(keep + recompute) / 2, true}} {
		e := budgetEngine(t, c.budget)
		if err := e.Check(nil, seqs, GenParams{MaxTokens: 4, TopP: 1}, &p); err != nil {
			t.Fatalf("budget %d: %v", c.budget, err)
		}
		ad, st, err := e.FineTune(context.Background(), seqs, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		ad.Release()
		if st.Recompute != c.want || st.Steps != 1 {
			t.Errorf("budget %d (keeping needs %d, recomputing %d): recompute %v, %d steps", c.budget, keep, recompute, st.Recompute, st.Steps)
		}
	}
	if err := budgetEngine(t, recompute-1).Check(nil, seqs, GenParams{MaxTokens: 4, TopP: 1}, &p); err == nil {
		t.Error("a budget below even the recomputing plan passed the check")
	}
}
