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
	log  *slog.Logger
}

// NewEngine wraps a loaded model and its tokenizer. name identifies the base
// model in saved adapters.
func NewEngine(m *nn.Model, tok *tokenizer.Tokenizer, name string, log *slog.Logger) (*Engine, error) {
	e := &Engine{m: m, tok: tok, name: name, log: log}
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

// Generate implements Model.
func (e *Engine) Generate(ctx context.Context, adapter Adapter, prompts []string, p GenParams) ([]Completion, error) {
	stop := append([]int{}, e.eos...)
	for _, s := range p.Stop {
		id, ok := e.tok.TokenID(s)
		if !ok {
			return nil, errorf("ValueError", "stop token %q is not in the tokenizer's vocabulary", s)
		}
		stop = append(stop, id)
	}
	ids := make([][]int32, len(prompts))
	for i, s := range prompts {
		for _, id := range e.tok.Encode(s, true) {
			ids[i] = append(ids[i], int32(id))
		}
		if len(ids[i]) == 0 {
			return nil, errorf("ValueError", "prompt %d encodes to no tokens", i)
		}
	}
	var ad *nn.Adapter
	if a, ok := adapter.(*engineAdapter); ok && a != nil {
		ad = a.ad
	}
	out, err := e.m.Generate(ctx, ids, ad, nn.GenerateOptions{
		MaxNewTokens: p.MaxTokens, Temperature: p.Temperature, TopP: p.TopP, Seed: uint64(p.Seed), StopIDs: stop,
	})
	if err != nil {
		return nil, err
	}
	res := make([]Completion, len(out))
	for i, toks := range out {
		n := len(toks)
		if n < p.MaxTokens {
			n++ // a stop token ended it
		}
		res[i] = Completion{Text: e.tok.Decode(toInts(toks), true), Tokens: n}
	}
	return res, nil
}

// FineTune implements Model.
func (e *Engine) FineTune(ctx context.Context, seqs []string, p TrainParams, progress func(TrainProgress)) (Adapter, TrainStats, error) {
	var st TrainStats
	spec := lora.Spec{Rank: p.Rank, Alpha: p.Alpha, Dropout: p.Dropout, Layers: p.LoRALayers}
	for _, name := range p.TargetModules {
		mods, err := lora.ParseTargets(name)
		if err != nil {
			return nil, st, errorf("ValueError", "%v", err)
		}
		spec.Targets = append(spec.Targets, mods...)
	}
	if err := spec.Validate(e.m.Config); err != nil {
		return nil, st, errorf("ValueError", "%v", err)
	}
	pad, err := lora.ParsePadding(p.Padding)
	if err != nil {
		return nil, st, errorf("ValueError", "%v", err)
	}
	d := lora.Data{MaxSeqLength: p.MaxSeqLength, Padding: pad, EndMaskSubstring: p.EndMaskSubstring, PadID: e.pad}
	params := lora.Params{Epochs: p.Epochs, LR: p.LR, BatchSize: p.BatchSize, GradAccum: p.GradAccum,
		MaxGradNorm: 1, Shuffle: true, Seed: uint64(p.Seed)}
	if err := params.Validate(); err != nil {
		return nil, st, errorf("ValueError", "%v", err)
	}
	exs, skipped, err := d.Examples(e.tok, seqs)
	if err != nil {
		return nil, st, errorf("ValueError", "%v", err)
	}
	if len(skipped) > 0 {
		e.log.Warn("training sequences skipped: they encode to no tokens", "indices", skipped)
	}
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
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, st, err
		}
		return nil, st, errorf("RuntimeError", "fine-tuning failed: %v", err)
	}
	st.Steps = len(steps)
	if len(steps) > 0 {
		st.FirstLoss, st.LastLoss = steps[0].Loss, steps[len(steps)-1].Loss
	}
	return &engineAdapter{ad: ad, spec: spec, base: e.name}, st, nil
}

// engineAdapter is a trained adapter owned by one request.
type engineAdapter struct {
	ad   *nn.Adapter
	spec lora.Spec
	base string
}

// SavePEFT implements Adapter.
func (a *engineAdapter) SavePEFT(dir string) error { return lora.Save(dir, a.ad, a.spec, a.base) }

// Release implements Adapter: the adapter's tensors become garbage.
func (a *engineAdapter) Release() { a.ad = nil }

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
