package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
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
	// RequestTimeout, when positive, abandons a request that runs longer
	// (--request_timeout); its client gets a TimeoutError reply.
	RequestTimeout time.Duration
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

// checkNoSymlinks refuses a path any of whose existing components is a
// symbolic link, so that an adapter kept under models/ stays there.
func checkNoSymlinks(dir string) error {
	p := ""
	for _, part := range strings.Split(filepath.Clean(dir), string(filepath.Separator)) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // created below, as a real directory
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: kept adapters are written only inside the real models/ directory", p)
		}
	}
	return nil
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
	// Baselines, when not nil, keeps graded baseline answers for the
	// requests that repeat them (--baseline_cache).
	Baselines *BaselineCache

	step int // requests handled so far, shutdown excluded
}

// Handle runs one request message and returns the reply to send, and
// whether the server should stop after sending it ({"cmd": "shutdown"}).
// Every outcome, a panic included, is a reply; when ctx is done mid-request
// the request is abandoned with a KeyboardInterrupt error reply.
//
// The request counter, which names kept adapters, advances for every
// message that decodes to a JSON object and is not a shutdown, errors
// included, as SEAL's server advances it in a finally clause.
func (h *Handler) Handle(ctx context.Context, frames [][]byte) (reply []byte, shutdown bool) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	obj, err := decodeMessage(frames)
	if err != nil {
		log.Warn("bad message", "bytes", size(frames), "frames", len(frames), "error", errorText(err))
		return errorReply(err), false
	}
	req, err := parseObject(obj)
	if err == nil && req.Shutdown {
		log.Info("shutdown requested")
		return encode(map[string]string{"status": "bye"}), true
	}
	step := h.step
	h.step++
	if err != nil {
		log.Warn("bad request", "request", step, "bytes", size(frames), "error", errorText(err))
		return errorReply(err), false
	}
	if len(req.Unknown) > 0 {
		log.Warn("unknown request keys ignored", "request", step, "keys", req.Unknown)
	}
	if h.Config.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, h.Config.RequestTimeout, errTimeout)
		defer cancel()
	}
	st := &cycleStats{step: step, start: time.Now()}
	rep, err := h.runSafely(ctx, req, st, log)
	attrs := st.attrs(req)
	if err != nil {
		switch {
		case context.Cause(ctx) == errTimeout:
			err = errorf("TimeoutError", "the request ran longer than --request_timeout %s and was abandoned", h.Config.RequestTimeout)
		case ctx.Err() != nil:
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

// errTimeout is the cause of a request context that ran out of time.
var errTimeout = errors.New("request timeout")

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

	tp := req.Train
	tp.MaxSeqLength = h.Config.MaxSeqLength
	if tp.Padding == "" {
		tp.Padding = h.Config.Padding
	}
	tp.Seed = seed
	var train *TrainParams
	if req.Training() {
		train = &tp
	}
	prompts := h.prompts(req)
	if err := h.Model.Check(prompts, req.TrainSequences, gen, train); err != nil {
		return nil, err
	}
	if h.Config.KeepAdapters && req.Training() {
		if err := checkNoSymlinks(h.Config.AdapterDir(st.step)); err != nil {
			return nil, errorf("ValueError", "--keep_adapter_dir: %v", err)
		}
	}

	n := len(req.Questions)
	baseTexts, baseOK := make([]string, n), make([]bool, n)
	if req.BaselineEval && n > 0 {
		key, cacheable := baselineKey(identity(h.Model), identity(h.Grader), gen, req, prompts)
		cacheable = cacheable && h.Baselines != nil
		if cacheable {
			baseTexts, baseOK, st.baselineCached = h.Baselines.get(key)
		}
		if !st.baselineCached {
			var graded bool
			var err error
			baseTexts, baseOK, graded, err = h.evaluate(ctx, nil, req, prompts, gen, &st.baseline, log)
			if err != nil {
				return nil, fmt.Errorf("baseline evaluation: %w", err)
			}
			// Verdicts of a grader that failed are not the grader's: not kept.
			if cacheable && graded {
				h.Baselines.put(key, baseTexts, baseOK)
			}
		}
	}
	if !req.Training() {
		return newReply(baseTexts, baseTexts, baseOK, baseOK), nil
	}

	t0 := time.Now()
	lastLog := t0
	adapter, ts, err := h.Model.FineTune(ctx, req.TrainSequences, tp, func(p TrainProgress) {
		if now := time.Now(); now.Sub(lastLog) >= progressInterval || p.Step == p.Steps {
			lastLog = now
			log.Info("training", "request", st.step, "optimizer_step", p.Step, "optimizer_steps", p.Steps, "loss", round4f(p.Loss), "tokens_per_s", round2(p.TokensPerSecond))
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
		if err := checkNoSymlinks(dir); err != nil {
			return nil, errorf("ValueError", "--keep_adapter_dir: %v", err)
		}
		if err := adapter.SavePEFT(dir); err != nil {
			return nil, fmt.Errorf("saving the adapter to %s: %w", dir, err)
		}
		st.adapterDir = dir
	}
	adaptTexts, adaptOK, _, err := h.evaluate(ctx, adapter, req, prompts, gen, &st.adapted, log)
	if err != nil {
		return nil, fmt.Errorf("adapter evaluation: %w", err)
	}
	return newReply(baseTexts, adaptTexts, baseOK, adaptOK), nil
}

// progressInterval is the least time between two training progress lines.
const progressInterval = 2 * time.Second

// prompts returns the answer prompt of every question.
func (h *Handler) prompts(req *Request) []string {
	prompts := make([]string, len(req.Questions))
	for i, q := range req.Questions {
		prompts[i] = answerPrompt(q.Question, h.Config.Instruct, req.ChainOfThought)
	}
	return prompts
}

// evaluate answers every question with adapter (nil: the base model) and
// grades the answers. A grader that fails counts the answers it was given
// wrong, as SEAL's grading does, and logs a warning; graded is false then.
func (h *Handler) evaluate(ctx context.Context, adapter Adapter, req *Request, prompts []string, gen GenParams, ps *phaseStats, log *slog.Logger) (texts []string, ok []bool, graded bool, err error) {
	t0 := time.Now()
	outs, err := h.Model.Generate(ctx, adapter, prompts, gen)
	ps.generate = time.Since(t0)
	if err != nil {
		return nil, nil, false, fmt.Errorf("generation: %w", err)
	}
	if len(outs) != len(prompts) {
		return nil, nil, false, fmt.Errorf("generation: %d completions for %d prompts", len(outs), len(prompts))
	}
	texts = make([]string, len(outs))
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
	ok, graded = make([]bool, len(outs)), true
	if len(items) > 0 {
		t1 := time.Now()
		verdicts, err := h.Grader.Grade(ctx, items)
		ps.grade = time.Since(t1)
		if err == nil && len(verdicts) != len(items) {
			err = fmt.Errorf("%d verdicts for %d answers", len(verdicts), len(items))
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, false, ctx.Err()
			}
			log.Warn("grading failed: the answers count as wrong, as in SEAL", "answers", len(items), "error", errorText(err))
			verdicts, graded = make([]bool, len(items)), false
		}
		for j, i := range index {
			ok[i] = verdicts[j]
		}
	}
	return texts, ok, graded, nil
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
	baselineCached    bool // the baseline came from the cache
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
		"request", s.step,
		"questions", len(req.Questions),
		"train_sequences", len(req.TrainSequences),
		"train_bytes", textBytes(req.TrainSequences),
		"seed", s.seed,
		"baseline_cached", s.baselineCached,
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
			"loss_first", round4f(s.trainStats.FirstLoss),
			"loss_last", round4f(s.trainStats.LastLoss),
			"recompute", s.trainStats.Recompute)
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

// round4f rounds a loss to 4 decimals for the log. A window with no counted
// label has no loss (0/0): it is logged as the string "NaN", which JSON can
// hold.
func round4f(x float64) any {
	if math.IsNaN(x) {
		return "NaN"
	}
	return math.Round(x*1e4) / 1e4
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
