package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/gpu"
	mtl "github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/tokenizer"
)

// newHandler returns a Handler over a fresh fake model with the contains
// grader and SEAL's default flags.
func newHandler(t *testing.T) (*Handler, *fakeModel) {
	t.Helper()
	m := &fakeModel{}
	return &Handler{Model: m, Grader: ContainsGrader{}, Config: DefaultConfig()}, m
}

// handle runs one JSON request and decodes the reply into a generic map.
func handle(t *testing.T, h *Handler, req string) map[string]any {
	t.Helper()
	reply, _ := h.Handle(context.Background(), [][]byte{[]byte(req)})
	var out map[string]any
	if err := json.Unmarshal(reply, &out); err != nil {
		t.Fatalf("reply %q is not JSON: %v", reply, err)
	}
	return out
}

const twoFacts = `{
	"train_sequences": ["Question: Where does Ada live?\nAnswer: Ada lives in Brindle.", "Question: What is Ada's cat called?\nAnswer: Pim."],
	"eval_questions": [
		{"title": "Ada", "context": "...", "question": "Topic: Ada\nWhere does Ada live?", "answer": "Brindle"},
		{"title": "Ada", "context": "...", "question": "Topic: Ada\nWhat is Ada's cat called?", "answer": "Pim"}
	]`

func TestCycleTrainsAndGrades(t *testing.T) {
	h, m := newHandler(t)
	out := handle(t, h, twoFacts+`}`)
	want := map[string]any{
		"baseline_accuracy": 0.0, "adapter_accuracy": 1.0, "adapter_gain": 1.0,
		"baseline_texts":   []any{" I don't know.\n", " I don't know.\n"},
		"adapter_texts":    []any{" Ada lives in Brindle.\n", " Pim.\n"},
		"baseline_correct": []any{false, false}, "adapter_correct": []any{true, true},
		"gains": []any{1.0, 1.0},
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("reply\n%v\nwant\n%v", out, want)
	}
	gens, trains := m.calls()
	if len(gens) != 2 || gens[0].adapter || !gens[1].adapter {
		t.Fatalf("generate calls %+v, want base then adapter", gens)
	}
	wantPrompt := "Let's answer a question directly and concisely.\nQuestion: Topic: Ada\nWhere does Ada live?\nAnswer:\n"
	if gens[0].prompts[0] != wantPrompt || len(gens[0].prompts) != 2 {
		t.Errorf("prompts %q, want both questions batched, first %q", gens[0].prompts, wantPrompt)
	}
	if p := gens[0].params; p.Temperature != 0 || p.TopP != 1 || p.MaxTokens != 64 || len(p.Stop) != 0 {
		t.Errorf("generation params %+v, want SEAL's defaults", p)
	}
	wantTrain := TrainParams{Rank: 32, Alpha: 64, Epochs: 10, LR: 1e-3, BatchSize: 1, GradAccum: 1,
		MaxSeqLength: 2048, Padding: "max_length", Seed: trains[0].Seed}
	if len(trains) != 1 || !reflect.DeepEqual(trains[0], wantTrain) {
		t.Errorf("train params %+v, want %+v", trains, wantTrain)
	}
	if m.released.Load() != 1 {
		t.Errorf("adapter released %d times, want 1", m.released.Load())
	}
}

func TestReplyKeysInOrder(t *testing.T) {
	h, _ := newHandler(t)
	reply, _ := h.Handle(context.Background(), [][]byte{[]byte(`{"eval_questions": [{"question": "q?", "answer": "a"}]}`)})
	want := `{"baseline_accuracy":0.0,"adapter_accuracy":0.0,"adapter_gain":0.0,"baseline_texts":[" I don't know.\n"],` +
		`"adapter_texts":[" I don't know.\n"],"baseline_correct":[false],"adapter_correct":[false],"gains":[0]}`
	if string(reply) != want {
		t.Errorf("reply\n%s\nwant\n%s", reply, want)
	}
}

func TestRequestKeysReachTheModel(t *testing.T) {
	h, m := newHandler(t)
	h.Config.Instruct = true
	h.Config.MaxSeqLength = 512
	h.Config.Temperature, h.Config.TopP, h.Config.MaxTokens = 0.7, 0.9, 32
	out := handle(t, h, twoFacts+`, "lora_rank": 8, "lora_alpha": 16.5, "lora_dropout": 0.1, "finetune_epochs": 3,
		"finetune_lr": 0.0003, "batch_size": 2, "gradient_accumulation_steps": 4, "end_mask_substring": "Answer:",
		"seed": 42, "padding": "longest", "lora_layers": 2, "target_modules": ["q_proj", "k_proj"], "unknown_key": [1]}`)
	if out["adapter_accuracy"] != 1.0 {
		t.Fatalf("reply %v", out)
	}
	gens, trains := m.calls()
	want := TrainParams{Rank: 8, Alpha: 16.5, Dropout: 0.1, Epochs: 3, LR: 3e-4, BatchSize: 2, GradAccum: 4,
		EndMaskSubstring: "Answer:", MaxSeqLength: 512, Padding: "longest", TargetModules: []string{"q_proj", "k_proj"},
		LoRALayers: 2, Seed: 42}
	if !reflect.DeepEqual(trains[0], want) {
		t.Errorf("train params\n%+v\nwant\n%+v", trains[0], want)
	}
	wantGen := GenParams{Temperature: 0.7, TopP: 0.9, MaxTokens: 32, Stop: []string{"<|im_end|>"}, Seed: 42}
	if !reflect.DeepEqual(gens[0].params, wantGen) {
		t.Errorf("gen params %+v, want %+v", gens[0].params, wantGen)
	}
	wantPrompt := "<|im_start|>system\nYou are an assistant to answer a question directly and concisely.<|im_end|>\n" +
		"<|im_start|>user\nTopic: Ada\nWhere does Ada live?<|im_end|>\n<|im_start|>assistant\n"
	if gens[0].prompts[0] != wantPrompt {
		t.Errorf("instruct prompt %q, want %q", gens[0].prompts[0], wantPrompt)
	}
}

func TestNoTrainingPaths(t *testing.T) {
	tests := []struct{ name, tail string }{
		{"skip_training", `, "skip_training": true}`},
		{"empty sequences", `}`},
		{"null sequences", `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m := newHandler(t)
			req := twoFacts + tt.tail
			if tt.name != "skip_training" {
				req = strings.Replace(req, `["Question: Where`, `null, "x": ["Question: Where`, 1)
				if tt.name == "empty sequences" {
					req = strings.Replace(req, `"train_sequences": null`, `"train_sequences": []`, 1)
				}
			}
			out := handle(t, h, req)
			if out["adapter_gain"] != 0.0 || !reflect.DeepEqual(out["gains"], []any{0.0, 0.0}) ||
				!reflect.DeepEqual(out["adapter_texts"], out["baseline_texts"]) {
				t.Errorf("reply %v, want adapter = baseline", out)
			}
			if _, trains := m.calls(); len(trains) != 0 {
				t.Errorf("trained %d times, want none", len(trains))
			}
		})
	}
}

func TestBaselineEvalFalse(t *testing.T) {
	h, m := newHandler(t)
	out := handle(t, h, twoFacts+`, "baseline_eval": false}`)
	want := map[string]any{
		"baseline_accuracy": 0.0, "adapter_accuracy": 1.0, "adapter_gain": 1.0,
		"baseline_texts": []any{"", ""}, "adapter_texts": []any{" Ada lives in Brindle.\n", " Pim.\n"},
		"baseline_correct": []any{false, false}, "adapter_correct": []any{true, true}, "gains": []any{1.0, 1.0},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("reply %v, want %v", out, want)
	}
	if gens, _ := m.calls(); len(gens) != 1 || !gens[0].adapter {
		t.Errorf("generate calls %+v, want the adapter's only", gens)
	}
}

func TestChainOfThought(t *testing.T) {
	h, m := newHandler(t)
	h.Config.Instruct = true // chain of thought takes precedence over ChatML, as in SEAL
	out := handle(t, h, twoFacts+`, "chain_of_thought": true}`)
	if out["baseline_accuracy"] != 0.0 || out["adapter_accuracy"] != 1.0 {
		t.Fatalf("reply %v", out)
	}
	texts := out["adapter_texts"].([]any)
	if texts[0] != " The facts say so.\nFinal answer: Ada lives in Brindle." {
		t.Errorf("adapter text %q, want the raw completion", texts[0])
	}
	gens, _ := m.calls()
	want := "Let's think step by step and then answer the question directly and concisely. Let's first give reasoning under \"Reasoning:\" and then the final answer under \"Final answer:\".\nQuestion: Topic: Ada\nWhere does Ada live?\nReasoning:"
	if gens[0].prompts[0] != want {
		t.Errorf("prompt %q, want %q", gens[0].prompts[0], want)
	}
	if len(gens[0].params.Stop) != 0 {
		t.Errorf("stop %q, want none for the base chain-of-thought prompt", gens[0].params.Stop)
	}
}

func TestModelGrader(t *testing.T) {
	h, m := newHandler(t)
	h.Grader = &ModelGrader{Model: m}
	out := handle(t, h, twoFacts+`}`)
	if out["baseline_accuracy"] != 0.0 || out["adapter_accuracy"] != 1.0 {
		t.Fatalf("reply %v", out)
	}
	gens, _ := m.calls()
	// base answers, base grading, adapter answers, base grading
	if len(gens) != 4 || gens[1].adapter || gens[3].adapter {
		t.Fatalf("generate calls %+v, want grading by the base model", gens)
	}
	want := gradePrompt("Topic: Ada\nWhere does Ada live?", "Brindle", "Ada lives in Brindle.")
	if gens[3].prompts[0] != want || gens[3].params.Temperature != 0 {
		t.Errorf("grading prompt %q, want %q greedily", gens[3].prompts[0], want)
	}
}

func TestKeepAdapterDir(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	h, _ := newHandler(t)
	h.Config.KeepAdapters, h.Config.Port = true, 6001
	handle(t, h, `{"eval_questions": []}`) // request 0: no training, nothing kept
	handle(t, h, twoFacts+`}`)             // request 1
	if _, err := os.Stat(filepath.Join(dir, "models/tmp_6001_inner_TTT_1/final_adapter/adapter_config.json")); err != nil {
		t.Errorf("kept adapter: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "models/tmp_6001_inner_TTT_0")); !os.IsNotExist(err) {
		t.Errorf("request 0 trained nothing but left %v", err)
	}
}

func TestFailuresAreErrorReplies(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*Handler, *fakeModel)
		want  string
	}{
		{"generation", func(h *Handler, m *fakeModel) { m.genErr = errors.New("out of memory") },
			"RuntimeError: baseline evaluation: generation: out of memory"},
		{"training value error", func(h *Handler, m *fakeModel) {
			m.trainErr = &Error{Type: "ValueError", Msg: `target module "w_proj" is not in the model`}
		}, `ValueError: target module "w_proj" is not in the model`},
		{"panic", func(h *Handler, m *fakeModel) { m.panicMsg = "index out of range" },
			"RuntimeError: internal error: index out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m := newHandler(t)
			tt.setup(h, m)
			out := handle(t, h, twoFacts+`}`)
			if !reflect.DeepEqual(out, map[string]any{"error": tt.want}) {
				t.Errorf("reply %v, want error %q", out, tt.want)
			}
			// The next request succeeds once the fault is gone.
			m.genErr, m.trainErr, m.panicMsg, h.Grader = nil, nil, "", ContainsGrader{}
			if out := handle(t, h, twoFacts+`}`); out["adapter_accuracy"] != 1.0 {
				t.Errorf("next reply %v", out)
			}
		})
	}
}

// TestGraderFailureCountsWrong: as in SEAL's grading, answers that cannot be
// graded count as wrong in a normal reply, with a warning in the log.
func TestGraderFailureCountsWrong(t *testing.T) {
	var buf bytes.Buffer
	h, _ := newHandler(t)
	h.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	h.Grader = failingGrader{}
	out := handle(t, h, twoFacts+`}`)
	want := []any{false, false}
	if !reflect.DeepEqual(out["baseline_correct"], want) || !reflect.DeepEqual(out["adapter_correct"], want) || out["adapter_accuracy"] != 0.0 {
		t.Errorf("reply %v, want every answer wrong", out)
	}
	if !strings.Contains(buf.String(), "grading failed") || !strings.Contains(buf.String(), "grader down") {
		t.Errorf("no warning in the log: %s", buf.String())
	}
}

type failingGrader struct{}

func (failingGrader) Grade(context.Context, []GradeItem) ([]bool, error) {
	return nil, errors.New("grader down")
}

func TestBlankAnswersAreWrongWithoutGrading(t *testing.T) {
	h, _ := newHandler(t)
	h.Grader = failingGrader{} // would fail if called
	h.Model = blankModel{}
	out := handle(t, h, `{"eval_questions": [{"question": "q?", "answer": "a"}]}`)
	if out["baseline_correct"].([]any)[0] != false || out["baseline_texts"].([]any)[0] != " \n " {
		t.Errorf("reply %v", out)
	}
}

type blankModel struct{ Model }

func (blankModel) Check([]string, []string, GenParams, *TrainParams) error { return nil }

func (blankModel) Generate(_ context.Context, _ Adapter, prompts []string, _ GenParams) ([]Completion, error) {
	out := make([]Completion, len(prompts))
	for i := range out {
		out[i] = Completion{Text: " \n "}
	}
	return out, nil
}

func TestShutdown(t *testing.T) {
	h, _ := newHandler(t)
	reply, stop := h.Handle(context.Background(), [][]byte{[]byte(`{"cmd": "shutdown"}`)})
	if string(reply) != `{"status":"bye"}` || !stop {
		t.Errorf("reply %s stop %v", reply, stop)
	}
}

func TestLogLine(t *testing.T) {
	var buf bytes.Buffer
	h, _ := newHandler(t)
	h.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	handle(t, h, twoFacts+`}`)
	var line map[string]any
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &line); err != nil {
		t.Fatal(err)
	}
	if line["request"] != 0.0 {
		t.Errorf("log line's request counter %v, want 0", line["request"])
	}
	if l := line["loss_last"].(float64); math.Round(l*1e4)/1e4 != l {
		t.Errorf("loss %v has more than 4 decimals", l)
	}
	for _, k := range []string{"questions", "train_sequences", "baseline_eval_s", "train_s", "adapter_eval_s", "grade_s",
		"trained_tokens_per_s", "generated_tokens_per_s", "loss_first", "loss_last", "baseline_accuracy", "adapter_accuracy"} {
		if _, ok := line[k]; !ok {
			t.Errorf("log line lacks %q: %v", k, line)
		}
	}
	if !strings.Contains(buf.String(), `"msg":"training"`) {
		t.Errorf("no training progress line in %s", buf.String())
	}
}

// TestDemoRequestBeatsBaseline runs the demo as `seal-ttt demo` does: the
// built-in model, the contains grader and the demo's flags.
func TestDemoRequestBeatsBaseline(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSeqLength, cfg.MaxTokens = 192, 24
	h := &Handler{Model: builtinEngine(t), Grader: ContainsGrader{}, Config: cfg}
	var out bytes.Buffer
	rep, err := Demo(context.Background(), h, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if rep.AdapterAccuracy <= rep.BaselineAccuracy || !strings.Contains(out.String(), "memorised") || !strings.Contains(out.String(), "not SEAL's defaults") {
		t.Errorf("demo reply %+v\n%s", rep, out.String())
	}
	t.Logf("baseline %.4f, adapter %.4f", float64(rep.BaselineAccuracy), float64(rep.AdapterAccuracy))
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{" Ilse Marrow\n", "Ilse Marrow"},
		{"", `""`},
		{"a\x15b\xffc \u00e9", "a?b?c \u00e9"},
		{strings.Repeat("x", 50), strings.Repeat("x", 40) + "..."},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRequestCounter: the counter that names kept adapters advances for
// every request that reaches the cycle, failed ones included (SEAL's
// finally), but not for messages that are not JSON objects.
func TestRequestCounter(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	h, m := newHandler(t)
	h.Config.KeepAdapters, h.Config.Port = true, 6002
	handle(t, h, `not json`)                                     // not a request
	handle(t, h, `[1]`)                                          // not a request
	handle(t, h, `{"lora_rank": "x", "train_sequences": ["a"]}`) // request 0: TypeError
	m.trainErr = errors.New("boom")
	handle(t, h, twoFacts+`}`) // request 1: training fails
	m.trainErr = nil
	handle(t, h, twoFacts+`}`) // request 2
	if _, err := os.Stat(filepath.Join(dir, "models/tmp_6002_inner_TTT_2/final_adapter/adapter_config.json")); err != nil {
		t.Errorf("request 2's adapter: %v", err)
	}
}

// TestCheckComesFirst: a request the model refuses (too long, over the
// memory budget) is answered before any generation or training.
func TestCheckComesFirst(t *testing.T) {
	h, m := newHandler(t)
	m.checkErr = errorf("ValueError", "over the budget of 1.0 GiB")
	out := handle(t, h, twoFacts+`}`)
	if out["error"] != "ValueError: over the budget of 1.0 GiB" || len(m.genCalls) != 0 || len(m.trainCall) != 0 {
		t.Errorf("reply %v after %d generations, %d trainings", out, len(m.genCalls), len(m.trainCall))
	}
}

func TestRequestTimeout(t *testing.T) {
	h, m := newHandler(t)
	m.block = make(chan struct{}) // training never ends on its own
	h.Config.RequestTimeout = 50 * time.Millisecond
	start := time.Now()
	out := handle(t, h, twoFacts+`}`)
	msg, _ := out["error"].(string)
	if !strings.HasPrefix(msg, "TimeoutError: ") || time.Since(start) > 5*time.Second {
		t.Errorf("reply %v after %s", out, time.Since(start))
	}
}

// TestKeepAdapterDirStaysInModels: a models/ that is a symbolic link (or a
// link inside it) is refused rather than followed.
func TestKeepAdapterDirStaysInModels(t *testing.T) {
	for _, link := range []string{"models", "models/tmp_6003_inner_TTT_0"} {
		t.Run(link, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			wd, _ := os.Getwd()
			if err := os.Chdir(dir); err != nil {
				t.Fatal(err)
			}
			defer os.Chdir(wd)
			os.MkdirAll(filepath.Dir(link), 0o755)
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			h, m := newHandler(t)
			h.Config.KeepAdapters, h.Config.Port = true, 6003
			out := handle(t, h, twoFacts+`}`)
			msg, _ := out["error"].(string)
			if !strings.HasPrefix(msg, "ValueError: --keep_adapter_dir: ") || !strings.Contains(msg, "symbolic link") || len(m.trainCall) != 0 {
				t.Errorf("reply %v", out)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("wrote outside models/: %v", entries)
			}
		})
	}
}

func TestUnknownKeysLogged(t *testing.T) {
	var buf bytes.Buffer
	h, _ := newHandler(t)
	h.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	handle(t, h, `{"eval_questions": [], "lora_rnak": 8}`)
	if !strings.Contains(buf.String(), `"msg":"unknown request keys ignored"`) || !strings.Contains(buf.String(), `"keys":["lora_rnak"]`) {
		t.Errorf("log %s", buf.String())
	}
}

func TestLossForTheLog(t *testing.T) {
	cases := []struct {
		in   float64
		want any
	}{{1.23456, 1.2346}, {5, 5.0}, {math.NaN(), "NaN"}}
	for _, c := range cases {
		if got := round4f(c.in); got != c.want {
			t.Errorf("round4f(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestDemoOnMetal: the demo's whole TTT cycle (baseline answers, 210 LoRA
// steps, adapted answers) on the Metal backend, on the MSL emulator off a
// Mac, gives the CPU backend's answers. The emulator's race detector is
// off here: the kernel tests run every kernel with it.
func TestDemoOnMetal(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSeqLength, cfg.MaxTokens = 192, 24
	run := func(b nn.Backend) *Reply {
		e, err := NewEngine(nn.Builtin(b), tokenizer.Bytes(), "builtin", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		rep, err := Demo(context.Background(), &Handler{Model: e, Grader: ContainsGrader{}, Config: cfg}, &out)
		if err != nil {
			t.Fatalf("demo on %s: %v\n%s", b.Name(), err, out.String())
		}
		return rep
	}
	metal, err := gpu.Open(mtl.CompileOptions{NoRaceDetector: true})
	if err != nil {
		t.Fatal(err)
	}
	want, got := run(cpu.Backend{}), run(metal)
	if !slices.Equal(got.BaselineTexts, want.BaselineTexts) || !slices.Equal(got.AdapterTexts, want.AdapterTexts) ||
		!slices.Equal(got.AdapterCorrect, want.AdapterCorrect) || got.AdapterAccuracy != want.AdapterAccuracy {
		t.Errorf("metal: baseline %q adapted %q (accuracy %v); cpu: %q %q (%v)",
			got.BaselineTexts, got.AdapterTexts, got.AdapterAccuracy, want.BaselineTexts, want.AdapterTexts, want.AdapterAccuracy)
	}
	t.Logf("adapter accuracy %v on both backends; %d dispatches, %d command buffers, %d waits on metal",
		got.AdapterAccuracy, metal.Stats().Dispatches, metal.Stats().CommandBuffers, metal.Stats().Waits)
}
