package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// baselineCalls counts the fake model's generate calls without an adapter.
func baselineCalls(m *fakeModel) int {
	gens, _ := m.calls()
	n := 0
	for _, g := range gens {
		if !g.adapter {
			n++
		}
	}
	return n
}

// TestBaselineCacheSameBytes sends one request twice to a server with the
// cache and to one without: all four replies must be the same bytes, and
// the cached server must answer the baseline once. The built-in model
// (real generation, training and grading) and the fake one both.
func TestBaselineCacheSameBytes(t *testing.T) {
	builtinCfg := DefaultConfig()
	builtinCfg.MaxSeqLength, builtinCfg.MaxTokens, builtinCfg.Padding = 48, 6, "longest"
	cases := []struct {
		name  string
		model func() Model
		cfg   Config
		req   string
		// req2, when set, is sent second instead of req.
		req2 string
	}{
		{"fake", func() Model { return &fakeModel{} }, DefaultConfig(), twoFacts + `}`, ""},
		{"fake no training", func() Model { return &fakeModel{} }, DefaultConfig(), twoFacts + `, "skip_training": true}`, ""},
		{"builtin", func() Model { return builtinEngine(t) }, builtinCfg,
			// A request seed makes training, and so the whole reply, repeatable.
			`{"train_sequences": ["Ada lives in Brindle."], "seed": 7, "lora_rank": 4, "finetune_epochs": 2, "finetune_lr": 0.01,
			"eval_questions": [{"question": "Where does Ada live?", "answer": "Brindle"}, {"question": "Who?", "answer": "Ada"}]}`, ""},
		// Greedy answers take no draws: the seed is not in the key.
		{"builtin, greedy, other seed", func() Model { return builtinEngine(t) }, builtinCfg,
			`{"eval_questions": [{"question": "Where does Ada live?", "answer": "Brindle"}], "seed": 1}`,
			`{"eval_questions": [{"question": "Where does Ada live?", "answer": "Brindle"}], "seed": 2}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var replies [][]byte
			for _, cache := range []*BaselineCache{nil, NewBaselineCache(8, 1<<20)} {
				model := tc.model()
				h := &Handler{Model: model, Grader: ContainsGrader{}, Config: tc.cfg, Baselines: cache}
				for i := range 2 {
					req := tc.req
					if i == 1 && tc.req2 != "" {
						req = tc.req2
					}
					reply, _ := h.Handle(context.Background(), [][]byte{[]byte(req)})
					if !strings.HasPrefix(string(reply), `{"baseline_accuracy"`) {
						t.Fatalf("reply %s", reply)
					}
					replies = append(replies, reply)
				}
				if m, ok := model.(*fakeModel); ok {
					want := 2
					if cache != nil {
						want = 1
					}
					if got := baselineCalls(m); got != want {
						t.Errorf("cache %v: %d baseline generations for two requests, want %d", cache != nil, got, want)
					}
				}
				if cache != nil {
					if n, _ := cache.Len(); n != 1 {
						t.Errorf("cache holds %d entries, want 1", n)
					}
				}
			}
			for i, r := range replies[1:] {
				if string(r) != string(replies[0]) {
					t.Errorf("reply %d differs:\n%s\nwant\n%s", i+1, r, replies[0])
				}
			}
		})
	}
}

// TestBaselineCacheKey: a second request that differs from the first in
// anything that decides the baseline must miss the cache, and one that
// differs in nothing that does must hit it. The handlers share one cache, so
// server settings and graders count as well as request keys.
func TestBaselineCacheKey(t *testing.T) {
	const base = `{"eval_questions": [{"question": "Where does Ada live?", "answer": "Brindle"}]`
	instruct, tokens, hot := DefaultConfig(), DefaultConfig(), DefaultConfig()
	instruct.Instruct, tokens.MaxTokens, hot.Temperature = true, 32, 0.7
	cases := []struct {
		name        string
		cfg         Config
		grader      Grader
		first, then string
		hit         bool
	}{
		{"same request", DefaultConfig(), nil, base + `}`, base + `}`, true},
		{"training keys do not matter", DefaultConfig(), nil, base + `}`, base + `, "train_sequences": ["x"], "lora_rank": 4}`, true},
		{"greedy ignores the seed", DefaultConfig(), nil, base + `, "seed": 1}`, base + `, "seed": 2}`, true},
		{"question", DefaultConfig(), nil, base + `}`, `{"eval_questions": [{"question": "Where does Ada work?", "answer": "Brindle"}]}`, false},
		{"gold answer", DefaultConfig(), nil, base + `}`, `{"eval_questions": [{"question": "Where does Ada live?", "answer": "Pim"}]}`, false},
		{"one more question", DefaultConfig(), nil, base + `}`, `{"eval_questions": [{"question": "Where does Ada live?", "answer": "Brindle"}, {"question": "q", "answer": "a"}]}`, false},
		{"chain of thought", DefaultConfig(), nil, base + `}`, base + `, "chain_of_thought": true}`, false},
		{"instruct template", instruct, nil, base + `}`, base + `}`, false},
		{"max tokens", tokens, nil, base + `}`, base + `}`, false},
		{"grader", DefaultConfig(), &ModelGrader{Model: &fakeModel{}}, base + `}`, base + `}`, false},
		{"sampling without a seed", hot, nil, base + `}`, base + `}`, false},
		{"sampling, same seed", hot, nil, base + `, "seed": 5}`, base + `, "seed": 5}`, true},
		{"sampling, other seed", hot, nil, base + `, "seed": 5}`, base + `, "seed": 6}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cache := NewBaselineCache(16, 1<<20)
			m := &fakeModel{}
			first := &Handler{Model: m, Grader: ContainsGrader{}, Config: DefaultConfig(), Baselines: cache}
			if tc.cfg.Temperature != 0 {
				first.Config = tc.cfg // the same sampling server twice
			}
			handle(t, first, tc.first)
			then := &Handler{Model: m, Grader: ContainsGrader{}, Config: tc.cfg, Baselines: cache}
			if tc.grader != nil {
				then.Grader = tc.grader
			}
			before := baselineCalls(m)
			handle(t, then, tc.then)
			if hit := baselineCalls(m) == before; hit != tc.hit {
				t.Errorf("cache hit %v, want %v", hit, tc.hit)
			}
		})
	}
}

// flakyGrader fails its first call and then says every answer is right.
type flakyGrader struct{ calls atomic.Int32 }

func (g *flakyGrader) Grade(_ context.Context, items []GradeItem) ([]bool, error) {
	if g.calls.Add(1) == 1 {
		return nil, errors.New("grading service unavailable")
	}
	ok := make([]bool, len(items))
	for i := range ok {
		ok[i] = true
	}
	return ok, nil
}

// TestBaselineCacheSkipsFailedGrading: answers counted wrong because the
// grader failed are not kept; the next request grades again.
func TestBaselineCacheSkipsFailedGrading(t *testing.T) {
	g := &flakyGrader{}
	h := &Handler{Model: &fakeModel{}, Grader: g, Config: DefaultConfig(), Baselines: NewBaselineCache(8, 1<<20)}
	req := twoFacts + `, "skip_training": true}`
	want := []float64{0, 1, 1} // failed, graded, cached
	for i, w := range want {
		if got := handle(t, h, req)["baseline_accuracy"]; got != w {
			t.Errorf("request %d: baseline accuracy %v, want %v", i, got, w)
		}
	}
	if n := g.calls.Load(); n != 2 {
		t.Errorf("grader called %d times, want 2 (the failed call, then once more)", n)
	}
}

// TestBaselineCacheBounds checks the least-recently-used eviction by entry
// count and by bytes.
func TestBaselineCacheBounds(t *testing.T) {
	key := func(i byte) [sha256.Size]byte { return [sha256.Size]byte{i} }
	texts := []string{strings.Repeat("a", 1000)}
	ok := []bool{true}
	entrySize := int64(1 + 16 + sha256.Size + 128 + 1000)

	c := NewBaselineCache(2, 1<<20)
	c.put(key(1), texts, ok)
	c.put(key(2), texts, ok)
	c.get(key(1)) // 2 is now the least recently used
	c.put(key(3), texts, ok)
	for i, want := range map[byte]bool{1: true, 2: false, 3: true} {
		if _, _, found := c.get(key(i)); found != want {
			t.Errorf("entries bound: entry %d kept %v, want %v", i, found, want)
		}
	}

	c = NewBaselineCache(100, 2*entrySize+10)
	for i := range byte(5) {
		c.put(key(i), texts, ok)
	}
	if n, b := c.Len(); n != 2 || b != 2*entrySize {
		t.Errorf("bytes bound: %d entries of %d bytes, want 2 of %d", n, b, 2*entrySize)
	}
	c.put(key(9), []string{strings.Repeat("b", 4*int(entrySize))}, ok)
	if _, _, found := c.get(key(9)); found {
		t.Error("an entry larger than the whole cache was kept")
	}

	// Entries are copies: changing the slices afterwards changes nothing.
	c = NewBaselineCache(4, 1<<20)
	mine := []string{"x"}
	c.put(key(1), mine, ok)
	mine[0] = "y"
	if got, _, _ := c.get(key(1)); got[0] != "x" {
		t.Errorf("entry changed with its source: %q", got[0])
	}
}
