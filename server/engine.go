package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/plan"
	"github.com/goseal/ttt/tokenizer"
)

// Engine is the Model of the TTT cycle built from an nn.Model, its
// tokenizer, and the lora package's trainer.
type Engine struct {
	m    *nn.Model
	tok  *tokenizer.Tokenizer
	name string // recorded as base_model_name_or_path in saved adapters
	eos  []int  // token ids that end generation
	pad  int32  // the pad id for training: eos, as SEAL sets it
	plan *plan.Plan
	log  *slog.Logger
}

// NewEngine wraps a loaded model and its tokenizer. name identifies the base
// model in saved adapters; maxMemory bounds the process's memory (weights
// included) for planning requests, 0 meaning plan.DefaultMaxMemory. A tokenizer
// with more ids than the model's vocabulary is refused.
func NewEngine(m *nn.Model, tok *tokenizer.Tokenizer, name string, maxMemory int64, log *slog.Logger) (*Engine, error) {
	if n := tok.VocabSize(); n > m.Config.VocabSize {
		return nil, fmt.Errorf("model %s: the tokenizer has %d ids but the model's vocabulary only %d: they do not belong together", name, n, m.Config.VocabSize)
	}
	if maxMemory <= 0 {
		maxMemory = plan.DefaultMaxMemory()
	}
	if maxMemory <= 0 {
		return nil, fmt.Errorf("the machine's memory size cannot be read: set --max_memory")
	}
	p, err := plan.New(PlanModel(m), maxMemory)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	e := &Engine{m: m, tok: tok, name: name, plan: p, log: log}
	e.eos = append(e.eos, m.Config.EOS...)
	if id, ok := tok.EOS(); ok {
		e.eos = append(e.eos, id)
	}
	if len(e.eos) == 0 {
		return nil, fmt.Errorf("model %s: neither config.json nor the tokenizer names an end-of-sequence token", name)
	}
	if id, ok := tok.EOS(); ok {
		e.pad = int32(id)
	} else {
		e.pad = int32(m.Config.EOS[0])
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// PlanModel is m as the memory plan sees it: on the Metal backend its
// weights keep their stored dtype, on the CPU they are float32.
func PlanModel(m *nn.Model) plan.Model {
	pm := plan.Model{Cfg: m.Config, Backend: plan.CPU}
	if m.B.Name() == plan.Metal.String() {
		pm.Backend, pm.DType = plan.Metal, m.Embed.DType
	}
	return pm
}

// CheckConfig checks the server's settings against the model once, at
// startup: answers and training rows must fit the model's context.
func (e *Engine) CheckConfig(c Config) error {
	ctx := e.m.Config.MaxPositions
	switch {
	case c.MaxTokens < 1 || c.MaxTokens >= ctx:
		return fmt.Errorf("--eval_max_tokens %d must be between 1 and %d: the model has %d positions and a prompt needs at least one", c.MaxTokens, ctx-1, ctx)
	case c.MaxSeqLength > ctx:
		return fmt.Errorf("--max_seq_length %d exceeds the model's %d positions", c.MaxSeqLength, ctx)
	}
	return nil
}

// Budget is the memory a request may use on top of the model's weights.
func (e *Engine) Budget() int64 { return e.plan.Budget }

// encode tokenises prompts as generation sees them.
func (e *Engine) encode(prompts []string) ([][]int32, int, error) {
	ids := make([][]int32, len(prompts))
	longest := 0
	for i, s := range prompts {
		for _, id := range e.tok.Encode(s, true) {
			ids[i] = append(ids[i], int32(id))
		}
		if len(ids[i]) == 0 {
			return nil, 0, errorf("ValueError", "prompt %d encodes to no tokens", i)
		}
		longest = max(longest, len(ids[i]))
	}
	return ids, longest, nil
}

// stopIDs returns the token ids that end generation with p.
func (e *Engine) stopIDs(p GenParams) ([]int, error) {
	stop := append([]int{}, e.eos...)
	for _, s := range p.Stop {
		id, ok := e.tok.TokenID(s)
		if !ok {
			return nil, errorf("ValueError", "stop token %q is not in the tokenizer's vocabulary", s)
		}
		stop = append(stop, id)
	}
	return stop, nil
}

// overBudget is the error of a request whose plan does not fit.
func (e *Engine) overBudget(what string, need int64, advice string) error {
	return errorf("ValueError", "%s needs about %s of memory, over the budget of %s (--max_memory less the model's %s of weights)%s",
		what, plan.FormatBytes(need), plan.FormatBytes(e.plan.Budget), plan.FormatBytes(e.plan.WeightBytes()), advice)
}

// Check implements Model.
func (e *Engine) Check(prompts, seqs []string, gen GenParams, train *TrainParams) error {
	if _, err := e.stopIDs(gen); err != nil {
		return err
	}
	positions := e.m.Config.MaxPositions
	longest := 0
	for i, s := range prompts {
		n := len(e.tok.Encode(s, true))
		if n+gen.MaxTokens > positions {
			return errorf("ValueError", "eval_questions[%d]: its prompt is %d tokens; with %d new tokens (--eval_max_tokens) the model's %d positions allow prompts of at most %d tokens",
				i, n, gen.MaxTokens, positions, positions-gen.MaxTokens)
		}
		longest = max(longest, n)
	}
	if len(prompts) > 0 && e.plan.GroupSize(len(prompts), longest, gen.MaxTokens) == 0 {
		return e.overBudget(fmt.Sprintf("answering one question of %d prompt tokens", longest), e.plan.GenerateBytes(1, longest, gen.MaxTokens), "")
	}
	if train == nil {
		return nil
	}
	spec, d, _, err := e.trainSetup(*train)
	if err != nil {
		return err
	}
	longestSeq := 0
	if d.Padding == lora.Longest {
		for _, s := range seqs {
			longestSeq = max(longestSeq, min(len(e.tok.Encode(s, true)), d.MaxSeqLength))
		}
	}
	mb := e.micro(spec, d, *train, len(seqs), longestSeq)
	recompute, need := e.plan.Checkpoint(mb)
	if need > e.plan.Budget {
		return e.overBudget(fmt.Sprintf("training on micro-batches of %d sequences of %d tokens (recomputing activations: %v)", mb.Rows, mb.Width, recompute), need,
			": lower batch_size (gradient_accumulation_steps keeps the effective batch) or --max_seq_length, or use padding \"longest\"")
	}
	return nil
}

// settle waits for the device work that a failed or panicking call left
// queued, so the next request starts with none of it (and none of its
// errors) on the backend.
func (e *Engine) settle(err *error) {
	if p := recover(); p != nil {
		e.m.B.Sync()
		panic(p)
	}
	if *err != nil {
		e.m.B.Sync()
	}
}

// micro is the shape of a request's training micro-batches of its seqs
// sequences, as the memory plan sees it: rows of the padded width, or, with
// padding "longest", of longest tokens (the longest sequence, truncated).
func (e *Engine) micro(spec lora.Spec, d lora.Data, p TrainParams, seqs, longest int) plan.Micro {
	width := d.MaxSeqLength
	if d.Padding == lora.Longest {
		width = longest
	}
	targets := spec.Targets
	if len(targets) == 0 {
		targets = lora.DefaultTargets(e.m.Config.Arch)
	}
	return plan.Micro{Rows: min(p.BatchSize, seqs), Width: width, LoRA: plan.LoRA{Rank: spec.Rank, Targets: targets, Layers: spec.Layers, Dropout: spec.Dropout > 0}}
}

// Generate implements Model. Prompts are answered in groups sized by the
// memory plan, so that memory is bounded whatever their number.
func (e *Engine) Generate(ctx context.Context, adapter Adapter, prompts []string, p GenParams) (_ []Completion, err error) {
	defer e.settle(&err)
	stop, err := e.stopIDs(p)
	if err != nil {
		return nil, err
	}
	ids, longest, err := e.encode(prompts)
	if err != nil {
		return nil, err
	}
	var ad *nn.Adapter
	if a, ok := adapter.(*engineAdapter); ok && a != nil {
		ad = a.ad
	}
	group := e.plan.GroupSize(len(ids), longest, p.MaxTokens)
	if group == 0 && len(ids) > 0 {
		return nil, e.overBudget(fmt.Sprintf("answering one prompt of %d tokens", longest), e.plan.GenerateBytes(1, longest, p.MaxTokens), "")
	}
	res := make([]Completion, 0, len(prompts))
	for start := 0; start < len(ids); start += group {
		end := min(start+group, len(ids))
		out, err := e.m.Generate(ctx, ids[start:end], ad, nn.GenerateOptions{
			MaxNewTokens: p.MaxTokens, Temperature: p.Temperature, TopP: p.TopP, Seed: uint64(p.Seed) + uint64(start), StopIDs: stop,
		})
		if err != nil {
			return nil, err
		}
		for _, toks := range out {
			n := len(toks)
			if n < p.MaxTokens {
				n++ // a stop token ended it
			}
			res = append(res, Completion{Text: e.tok.Decode(toInts(toks), true), Tokens: n})
		}
	}
	return res, nil
}

// trainSetup turns a request's hyperparameters into the lora package's.
func (e *Engine) trainSetup(p TrainParams) (lora.Spec, lora.Data, lora.Params, error) {
	spec := lora.Spec{Rank: p.Rank, Alpha: p.Alpha, Dropout: p.Dropout, Layers: p.LoRALayers}
	for _, name := range p.TargetModules {
		mods, err := lora.ParseTargets(name)
		if err != nil {
			return spec, lora.Data{}, lora.Params{}, errorf("ValueError", "%v", err)
		}
		spec.Targets = append(spec.Targets, mods...)
	}
	if err := spec.Validate(e.m.Config); err != nil {
		return spec, lora.Data{}, lora.Params{}, errorf("ValueError", "%v", err)
	}
	pad, err := lora.ParsePadding(p.Padding)
	if err != nil {
		return spec, lora.Data{}, lora.Params{}, errorf("ValueError", "%v", err)
	}
	d := lora.Data{MaxSeqLength: p.MaxSeqLength, Padding: pad, EndMaskSubstring: p.EndMaskSubstring, PadID: e.pad}
	if d.MaxSeqLength < 2 {
		return spec, d, lora.Params{}, errorf("ValueError", "max_seq_length %d must be at least 2", d.MaxSeqLength)
	}
	params := lora.Params{Epochs: p.Epochs, LR: p.LR, BatchSize: p.BatchSize, GradAccum: p.GradAccum,
		MaxGradNorm: 1, Shuffle: true, Seed: uint64(p.Seed)}
	if err := params.Validate(); err != nil {
		return spec, d, params, errorf("ValueError", "%v", err)
	}
	return spec, d, params, nil
}

// FineTune implements Model.
func (e *Engine) FineTune(ctx context.Context, seqs []string, p TrainParams, progress func(TrainProgress)) (_ Adapter, st TrainStats, err error) {
	defer e.settle(&err)
	spec, d, params, err := e.trainSetup(p)
	if err != nil {
		return nil, st, err
	}
	exs, skipped, err := d.Examples(e.tok, seqs)
	if err != nil {
		return nil, st, errorf("ValueError", "%v", err)
	}
	if len(skipped) > 0 {
		e.log.Warn("training sequences skipped: they encode to no tokens", "indices", skipped)
	}
	// Recompute activations in the backward pass when keeping them all
	// would not fit the budget (Check has refused what fits neither way).
	longest := 0
	for _, ex := range exs {
		longest = max(longest, len(ex.IDs)) // truncated to max_seq_length, unpadded
	}
	params.Checkpoint, _ = e.plan.Checkpoint(e.micro(spec, d, p, len(seqs), longest))
	st.Recompute = params.Checkpoint
	ad, err := lora.New(e.m, spec, rand.New(rand.NewPCG(uint64(p.Seed), 0x10a)))
	if err != nil {
		return nil, st, errorf("ValueError", "%v", err)
	}
	start, last := time.Now(), time.Time{}
	steps, err := lora.Train(ctx, e.m, ad, exs, d, params, func(s lora.Step) {
		st.Tokens += s.Tokens
		if progress != nil && (time.Since(last) >= 2*time.Second || s.Step == s.Steps) {
			last = time.Now()
			progress(TrainProgress{Step: s.Step, Steps: s.Steps, Loss: s.Loss, TokensPerSecond: float64(st.Tokens) / time.Since(start).Seconds()})
		}
	})
	if err != nil {
		ad.Free(e.m.B)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, st, err
		}
		return nil, st, errorf("RuntimeError", "fine-tuning failed: %v", err)
	}
	st.Steps = len(steps)
	if len(steps) > 0 {
		st.FirstLoss, st.LastLoss = steps[0].Loss, steps[len(steps)-1].Loss
	}
	return &engineAdapter{m: e.m, ad: ad, spec: spec, base: e.name}, st, nil
}

// engineAdapter is a trained adapter owned by one request.
type engineAdapter struct {
	m    *nn.Model
	ad   *nn.Adapter
	spec lora.Spec
	base string
}

// SavePEFT implements Adapter.
func (a *engineAdapter) SavePEFT(dir string) error { return lora.Save(dir, a.m, a.ad, a.spec, a.base) }

// Release implements Adapter: the adapter's tensors go back to the
// backend, for the next request's adapter to reuse.
func (a *engineAdapter) Release() {
	if a.ad != nil {
		a.ad.Free(a.m.B)
		a.ad = nil
	}
}

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
