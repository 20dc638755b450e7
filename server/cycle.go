package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

// Config is the server-wide part of the cycle: SEAL's server flags.
type Config struct {
	// Instruct selects the ChatML answer template (--instruct_model).
	Instruct bool
	// MaxSeqLength truncates (and, padding max_length, pads) training
	// sequences (--max_seq_length, default 2048).
	MaxSeqLength int
	// Temperature, TopP and MaxTokens control answer generation
	// (--eval_temperature 0, --eval_top_p 1, --eval_max_tokens 64).
	Temperature, TopP float64
	MaxTokens         int
	// Padding is the default padding mode, "max_length" or "longest"
	// (--padding); a request's "padding" key overrides it.
	Padding string
	// KeepAdapters saves every trained adapter in the PEFT format under
	// AdapterDir (--keep_adapter_dir).
	KeepAdapters bool
	// Port names the kept adapters' directories, as SEAL's server does.
	Port int
}

// DefaultConfig returns the defaults of SEAL's server flags.
func DefaultConfig() Config {
	return Config{MaxSeqLength: 2048, Temperature: 0, TopP: 1, MaxTokens: 64, Padding: "max_length", Port: 5555}
}

// AdapterDir is where the adapter of request number step (from 0) is kept:
// models/tmp_{port}_inner_TTT_{step}/final_adapter, relative to the working
// directory, as SEAL's clients expect.
func (c Config) AdapterDir(step int) string {
	return filepath.Join("models", fmt.Sprintf("tmp_%d_inner_TTT_%d", c.Port, step), "final_adapter")
}

// Handler runs the TTT cycle for one request message at a time. It is the
// one code path behind the server and the ttt command. It is not safe for
// concurrent use (SEAL's protocol is lock-step).
type Handler struct {
	Model  Model
	Grader Grader
	Config Config
	// Log receives one line per request and progress lines; nil discards.
	Log *slog.Logger

	step int // requests handled so far, shutdown excluded
}

// Handle runs one request message and returns the reply to send, and
// whether the server should stop after sending it ({"cmd": "shutdown"}).
// Every outcome, a panic included, is a reply; when ctx is done mid-request
// the request is abandoned with a KeyboardInterrupt error reply.
func (h *Handler) Handle(ctx context.Context, frames [][]byte) (reply []byte, shutdown bool) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	req, err := ParseRequest(frames)
	if err != nil {
		log.Warn("bad request", "bytes", size(frames), "frames", len(frames), "error", errorText(err))
		return errorReply(err), false
	}
	if req.Shutdown {
		log.Info("shutdown requested")
		return encode(map[string]string{"status": "bye"}), true
	}
	step := h.step
	h.step++
	st := &cycleStats{step: step, start: time.Now()}
	rep, err := h.runSafely(ctx, req, st, log)
	attrs := st.attrs(req)
	if err != nil {
		if ctx.Err() != nil {
			err = errInterrupted
		}
		attrs = append(attrs, "error", errorText(err))
		log.Error("request failed", attrs...)
		return errorReply(err), false
	}
	attrs = append(attrs, "baseline_accuracy", float64(rep.BaselineAccuracy), "adapter_accuracy", float64(rep.AdapterAccuracy))
	log.Info("request", attrs...)
	return encode(rep), false
}

// errInterrupted answers a request abandoned because the server is stopping
// (SIGINT or SIGTERM), named as Python names the exception of Ctrl-C.
var errInterrupted = errorf("KeyboardInterrupt", "the server is shutting down; the request was abandoned")

// runSafely runs the cycle, turning a panic into an error.
func (h *Handler) runSafely(ctx context.Context, req *Request, st *cycleStats, log *slog.Logger) (rep *Reply, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic in the TTT cycle", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			rep, err = nil, errorf("RuntimeError", "internal error: %v", p)
		}
	}()
	return h.run(ctx, req, st, log)
}

// run is the cycle: baseline answers, fine-tuning, adapted answers, grading.
func (h *Handler) run(ctx context.Context, req *Request, st *cycleStats, log *slog.Logger) (*Reply, error) {
	seed := req.Train.Seed
	if !req.HasSeed {
		// A fresh seed per request, as the original draws it.
		seed = (time.Now().UnixMicro() + int64(st.step)) & 0xFFFFFFFF
	}
	st.seed = seed
	gen := GenParams{Temperature: h.Config.Temperature, TopP: h.Config.TopP, MaxTokens: h.Config.MaxTokens, Seed: seed}
	if h.Config.Instruct && !req.ChainOfThought {
		gen.Stop = []string{imEnd}
	}

	n := len(req.Questions)
	baseTexts, baseOK := make([]string, n), make([]bool, n)
	if req.BaselineEval && n > 0 {
		var err error
		baseTexts, baseOK, err = h.evaluate(ctx, nil, req, gen, &st.baseline)
		if err != nil {
			return nil, fmt.Errorf("baseline evaluation: %w", err)
		}
	}
	if !req.Training() {
		return newReply(baseTexts, baseTexts, baseOK, baseOK), nil
	}

	tp := req.Train
	tp.MaxSeqLength = h.Config.MaxSeqLength
	if tp.Padding == "" {
		tp.Padding = h.Config.Padding
	}
	tp.Seed = seed
	t0 := time.Now()
	lastLog := t0
	adapter, ts, err := h.Model.FineTune(ctx, req.TrainSequences, tp, func(p TrainProgress) {
		if now := time.Now(); now.Sub(lastLog) >= progressInterval || p.Step == p.Steps {
			lastLog = now
			log.Info("training", "step", st.step, "optimizer_step", p.Step, "steps", p.Steps, "loss", p.Loss, "tokens_per_s", round2(p.TokensPerSecond))
		}
	})
	st.train, st.trainStats = time.Since(t0), ts
	if err != nil {
		return nil, fmt.Errorf("fine-tuning: %w", err)
	}
	if adapter == nil {
		return nil, fmt.Errorf("fine-tuning: the model returned no adapter")
	}
	defer adapter.Release()
	if h.Config.KeepAdapters {
		dir := h.Config.AdapterDir(st.step)
		if err := adapter.SavePEFT(dir); err != nil {
			return nil, fmt.Errorf("saving the adapter to %s: %w", dir, err)
		}
		st.adapterDir = dir
	}
	adaptTexts, adaptOK, err := h.evaluate(ctx, adapter, req, gen, &st.adapted)
	if err != nil {
		return nil, fmt.Errorf("adapter evaluation: %w", err)
	}
	return newReply(baseTexts, adaptTexts, baseOK, adaptOK), nil
}

// progressInterval is the least time between two training progress lines.
const progressInterval = 2 * time.Second

// evaluate answers every question with adapter (nil: the base model) in one
// batch and grades the answers.
func (h *Handler) evaluate(ctx context.Context, adapter Adapter, req *Request, gen GenParams, ps *phaseStats) ([]string, []bool, error) {
	prompts := make([]string, len(req.Questions))
	for i, q := range req.Questions {
		prompts[i] = answerPrompt(q.Question, h.Config.Instruct, req.ChainOfThought)
	}
	t0 := time.Now()
	outs, err := h.Model.Generate(ctx, adapter, prompts, gen)
	ps.generate = time.Since(t0)
	if err != nil {
		return nil, nil, fmt.Errorf("generation: %w", err)
	}
	if len(outs) != len(prompts) {
		return nil, nil, fmt.Errorf("generation: %d completions for %d prompts", len(outs), len(prompts))
	}
	texts := make([]string, len(outs))
	var items []GradeItem
	var index []int
	for i, o := range outs {
		texts[i] = o.Text
		ps.tokens += o.Tokens
		pred := o.Text
		if req.ChainOfThought {
			pred = finalAnswer(pred)
		}
		if strings.TrimSpace(pred) == "" {
			continue // blank answers are wrong without a grader call
		}
		items = append(items, GradeItem{Question: req.Questions[i].Question, Gold: req.Questions[i].Answer, Answer: pred})
		index = append(index, i)
	}
	ok := make([]bool, len(outs))
	if len(items) > 0 {
		t1 := time.Now()
		verdicts, err := h.Grader.Grade(ctx, items)
		ps.grade = time.Since(t1)
		if err != nil {
			return nil, nil, fmt.Errorf("grading: %w", err)
		}
		if len(verdicts) != len(items) {
			return nil, nil, fmt.Errorf("grading: %d verdicts for %d answers", len(verdicts), len(items))
		}
		for j, i := range index {
			ok[i] = verdicts[j]
		}
	}
	return texts, ok, nil
}

// cycleStats collects what the per-request log line reports.
type cycleStats struct {
	step              int
	seed              int64
	start             time.Time
	baseline, adapted phaseStats
	train             time.Duration
	trainStats        TrainStats
	adapterDir        string
}

// phaseStats times one evaluation phase.
type phaseStats struct {
	generate, grade time.Duration
	tokens          int
}

// attrs renders the stats as slog key-value pairs.
func (s *cycleStats) attrs(req *Request) []any {
	genTime := s.baseline.generate + s.adapted.generate
	a := []any{
		"step", s.step,
		"questions", len(req.Questions),
		"train_sequences", len(req.TrainSequences),
		"train_bytes", textBytes(req.TrainSequences),
		"seed", s.seed,
		"baseline_eval_s", round2(s.baseline.generate.Seconds()),
		"train_s", round2(s.train.Seconds()),
		"adapter_eval_s", round2(s.adapted.generate.Seconds()),
		"grade_s", round2((s.baseline.grade + s.adapted.grade).Seconds()),
		"total_s", round2(time.Since(s.start).Seconds()),
		"generated_tokens", s.baseline.tokens + s.adapted.tokens,
		"generated_tokens_per_s", round2(rate(s.baseline.tokens+s.adapted.tokens, genTime)),
	}
	if s.trainStats.Steps > 0 {
		a = append(a,
			"train_steps", s.trainStats.Steps,
			"trained_tokens", s.trainStats.Tokens,
			"trained_tokens_per_s", round2(rate(s.trainStats.Tokens, s.train)),
			"loss_first", s.trainStats.FirstLoss,
			"loss_last", s.trainStats.LastLoss)
	}
	if s.adapterDir != "" {
		a = append(a, "adapter_dir", s.adapterDir)
	}
	return a
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func round2(x float64) float64 {
	return math.Round(x*100) / 100
}

func textBytes(ss []string) int {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	return n
}

func size(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}
