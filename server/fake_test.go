package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fakeModel is a deterministic Model for tests. The base model knows
// nothing ("I don't know."); an adapter answers a question with the answer
// of the training sequence that shares the most words with it, so training
// on the facts makes the answers right. As a grader (SEAL's grading prompt)
// it says yes when the normalised gold answer is in the student answer.
type fakeModel struct {
	mu        sync.Mutex
	genCalls  []fakeGenCall
	trainCall []TrainParams

	checkErr error         // returned by Check when set
	genErr   error         // returned by Generate when set
	trainErr error         // returned by FineTune when set
	panicMsg string        // FineTune panics with it when set
	block    chan struct{} // FineTune waits until it is closed (or ctx is done) when set
	started  chan struct{} // FineTune signals it (if set) when it starts
	delay    time.Duration // each Generate call takes this long (or until ctx is done)
	released atomic.Int32  // adapters released
}

type fakeGenCall struct {
	adapter bool
	prompts []string
	params  GenParams
}

type fakeAdapter struct {
	seqs     []string
	words    map[string][]int
	released *atomic.Int32
}

func (a *fakeAdapter) SavePEFT(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, _ := json.Marshal(map[string]any{"peft_type": "LORA", "sequences": len(a.seqs)})
	return os.WriteFile(filepath.Join(dir, "adapter_config.json"), cfg, 0o644)
}

func (a *fakeAdapter) Release() { a.released.Add(1) }

func (m *fakeModel) Check(prompts, seqs []string, gen GenParams, train *TrainParams) error {
	return m.checkErr
}

func (m *fakeModel) Generate(ctx context.Context, adapter Adapter, prompts []string, p GenParams) ([]Completion, error) {
	m.mu.Lock()
	m.genCalls = append(m.genCalls, fakeGenCall{adapter: adapter != nil, prompts: prompts, params: p})
	m.mu.Unlock()
	if m.genErr != nil {
		return nil, m.genErr
	}
	if m.delay > 0 {
		sleep(ctx, m.delay)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]Completion, len(prompts))
	for i, prompt := range prompts {
		text := m.answer(adapter, prompt)
		out[i] = Completion{Text: text, Tokens: len(strings.Fields(text)) + 1}
	}
	return out, nil
}

func (m *fakeModel) answer(adapter Adapter, prompt string) string {
	if strings.HasPrefix(strings.TrimPrefix(prompt, "<|im_start|>user\n"), "You are a grading assistant") {
		gold := between(prompt, "Gold answer: ", "\n")
		pred := between(prompt, "Student answer: ", "\n")
		if strings.Contains(normalizeAnswer(pred), normalizeAnswer(gold)) {
			return " Yes"
		}
		return " No"
	}
	cot := strings.Contains(prompt, "Reasoning:")
	a, ok := adapter.(*fakeAdapter)
	if !ok {
		if cot {
			return " I have no idea."
		}
		return " I don't know.\n"
	}
	q := between(prompt, "Question: ", "\nAnswer:")
	if cot {
		q = between(prompt, "Question: ", "\nReasoning:")
	}
	if strings.HasPrefix(prompt, "<|im_start|>") {
		q = between(prompt, "<|im_start|>user\n", "<|im_end|>")
	}
	best := a.lookup(q)
	if i := strings.LastIndex(best, "Answer:"); i >= 0 {
		best = best[i+len("Answer:"):]
	}
	if cot {
		return " The facts say so.\nFinal answer: " + strings.TrimSpace(best)
	}
	return " " + strings.TrimSpace(best) + "\n"
}

// between returns the text of s after the first from up to the next to.
func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		s = s[:j]
	}
	return s
}

// index builds the adapter's word index: for each normalised word, the
// sequences it occurs in.
func (a *fakeAdapter) index() {
	a.words = map[string][]int{}
	for i, s := range a.seqs {
		seen := map[string]bool{}
		for _, w := range strings.Fields(normalizeAnswer(s)) {
			if !seen[w] {
				seen[w] = true
				a.words[w] = append(a.words[w], i)
			}
		}
	}
}

// lookup returns the sequence sharing the most words with q, ignoring words
// every sequence has; ties go to the earlier sequence.
func (a *fakeAdapter) lookup(q string) string {
	score := map[int]int{}
	for _, w := range strings.Fields(normalizeAnswer(q)) {
		if seqs := a.words[w]; len(a.seqs) == 1 || len(seqs) < len(a.seqs) {
			for _, i := range seqs {
				score[i]++
			}
		}
	}
	best, bestScore := 0, -1
	for i, n := range score {
		if n > bestScore || n == bestScore && i < best {
			best, bestScore = i, n
		}
	}
	return a.seqs[best]
}

func (m *fakeModel) FineTune(ctx context.Context, seqs []string, p TrainParams, progress func(TrainProgress)) (Adapter, TrainStats, error) {
	m.mu.Lock()
	m.trainCall = append(m.trainCall, p)
	m.mu.Unlock()
	if m.started != nil {
		m.started <- struct{}{}
	}
	if m.panicMsg != "" {
		panic(m.panicMsg)
	}
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return nil, TrainStats{}, ctx.Err()
		}
	}
	if m.trainErr != nil {
		return nil, TrainStats{}, m.trainErr
	}
	batches := (len(seqs) + p.BatchSize - 1) / p.BatchSize
	steps := p.Epochs * ((batches + p.GradAccum - 1) / p.GradAccum)
	loss := 2.0
	for s := 1; s <= steps; s++ {
		loss *= 0.9
		if progress != nil {
			progress(TrainProgress{Step: s, Steps: steps, Loss: loss, TokensPerSecond: 1000})
		}
	}
	tokens := 0
	for _, s := range seqs {
		tokens += len(strings.Fields(s))
	}
	a := &fakeAdapter{seqs: seqs, released: &m.released}
	a.index()
	return a, TrainStats{Steps: steps, Tokens: tokens * p.Epochs, FirstLoss: 1.8, LastLoss: loss}, nil
}

func (m *fakeModel) calls() ([]fakeGenCall, []TrainParams) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]fakeGenCall(nil), m.genCalls...), append([]TrainParams(nil), m.trainCall...)
}
