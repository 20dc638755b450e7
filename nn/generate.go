package nn

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// GenerateOptions control decoding. Temperature 0 is greedy (argmax);
// otherwise tokens are sampled from softmax(logits/Temperature) restricted to
// the smallest set of most likely tokens whose probability reaches TopP.
type GenerateOptions struct {
	MaxNewTokens int
	Temperature  float64
	TopP         float64 // 0 or ≥ 1: no nucleus cut
	Seed         uint64
	StopIDs      []int // end a sequence; the stop token is not returned
}

// prefillRows bounds how many prompt tokens run through one forward pass,
// which bounds activation memory whatever the number of prompts.
const prefillRows = 2048

// Generate continues every prompt (all prompts batched together) and returns
// the new tokens of each. ad may be nil (the base model). It stops early with
// ctx's error once ctx is done.
func (m *Model) Generate(ctx context.Context, prompts [][]int32, ad *Adapter, o GenerateOptions) ([][]int32, error) {
	if o.MaxNewTokens < 0 {
		return nil, fmt.Errorf("max new tokens %d is negative", o.MaxNewTokens)
	}
	if o.Temperature < 0 || math.IsNaN(o.Temperature) {
		return nil, fmt.Errorf("temperature %g must be ≥ 0", o.Temperature)
	}
	longest := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("prompt %d is empty", i)
		}
		longest = max(longest, len(p))
	}
	out := make([][]int32, len(prompts))
	if len(prompts) == 0 || o.MaxNewTokens == 0 {
		return out, nil
	}
	for i := range out {
		out[i] = make([]int32, 0, o.MaxNewTokens)
	}
	capacity := longest + o.MaxNewTokens
	if capacity > m.Config.MaxPositions {
		return nil, fmt.Errorf("prompt of %d tokens plus %d new tokens exceeds the model's %d positions", longest, o.MaxNewTokens, m.Config.MaxPositions)
	}
	stop := map[int32]bool{}
	for _, id := range o.StopIDs {
		stop[int32(id)] = true
	}
	d := &decoder{m: m, ad: ad, ws: newWorkspace(m.B), cache: m.NewKVCache(len(prompts), capacity),
		rng: rand.New(rand.NewPCG(o.Seed, 0x6e6e)), opts: o}
	next := make([]int32, len(prompts))
	lens := make([]int, len(prompts))

	// Prefill: prompts in groups of at most prefillRows tokens.
	for first := 0; first < len(prompts); {
		var b Batch
		var kvRows []int32
		var last []int
		n := first
		for ; n < len(prompts) && (n == first || len(b.IDs)+len(prompts[n]) <= prefillRows); n++ {
			p := prompts[n]
			b.Segs = append(b.Segs, Segment{Q: len(b.IDs), N: len(p), KV: n * capacity})
			for i, id := range p {
				b.IDs = append(b.IDs, id)
				b.Pos = append(b.Pos, int32(i))
				kvRows = append(kvRows, int32(n*capacity+i))
			}
			last = append(last, len(b.IDs)-1)
			lens[n] = len(p)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		toks, err := d.step(&b, kvRows, last)
		if err != nil {
			return nil, err
		}
		copy(next[first:n], toks)
		first = n
	}

	// Decode: one row per unfinished sequence per step.
	active := make([]int, 0, len(prompts))
	for s := range prompts {
		active = append(active, s)
	}
	b := Batch{}
	var kvRows []int32
	var rows []int
	for len(active) > 0 {
		keep := active[:0]
		for _, s := range active {
			t := next[s]
			if stop[t] {
				continue
			}
			out[s] = append(out[s], t)
			if len(out[s]) < o.MaxNewTokens {
				keep = append(keep, s)
			}
		}
		active = keep
		if len(active) == 0 {
			break
		}
		b.IDs, b.Pos, b.Segs, kvRows, rows = b.IDs[:0], b.Pos[:0], b.Segs[:0], kvRows[:0], rows[:0]
		for r, s := range active {
			pos := lens[s]
			b.IDs = append(b.IDs, next[s])
			b.Pos = append(b.Pos, int32(pos))
			b.Segs = append(b.Segs, Segment{Q: r, N: 1, KV: s * capacity, Past: pos})
			kvRows = append(kvRows, int32(s*capacity+pos))
			rows = append(rows, r)
			lens[s]++
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		toks, err := d.step(&b, kvRows, rows)
		if err != nil {
			return nil, err
		}
		for r, s := range active {
			next[s] = toks[r]
		}
	}
	return out, nil
}

// decoder is the state of one Generate call.
type decoder struct {
	m     *Model
	ad    *Adapter
	ws    *workspace
	cache *KVCache
	rng   *rand.Rand
	opts  GenerateOptions
	ids   []int32
	toks  []int32
	probs []float64
	order []int
}

// step runs the batch through the model with the cache, then picks a token
// from the logits of each row listed in last.
func (d *decoder) step(b *Batch, kvRows []int32, last []int) ([]int32, error) {
	m, B, ws := d.m, d.m.B, d.ws
	if err := m.validate(b, d.cache.K[0].Rows); err != nil {
		return nil, err
	}
	x := ws.get("x", len(b.IDs), m.Config.Hidden)
	B.Embed(x, m.Embed, b.IDs)
	for l := range m.Blocks {
		m.block(ws, l, x, b, d.cache.K[l], d.cache.V[l], kvRows, d.ad, nil)
	}
	d.ids = d.ids[:0]
	for _, r := range last {
		d.ids = append(d.ids, int32(r))
	}
	h := ws.get("last", len(last), m.Config.Hidden)
	B.Embed(h, x, d.ids)
	B.RMSNorm(h, h, m.Norm, m.Config.RMSNormEps)
	logits := ws.get("logits", len(last), m.Config.VocabSize)
	B.MatMul(logits, h, m.LMHead, false, true, 1, false)
	if err := B.Sync(); err != nil {
		return nil, err
	}
	d.toks = d.toks[:0]
	for r := range last {
		d.toks = append(d.toks, d.pick(logits.Row(r)))
	}
	return d.toks, nil
}

// pick chooses the next token from one row of logits.
func (d *decoder) pick(logits []float32) int32 {
	if d.opts.Temperature == 0 {
		return int32(Argmax(logits))
	}
	if cap(d.probs) < len(logits) {
		d.probs = make([]float64, len(logits))
		d.order = make([]int, len(logits))
	}
	return int32(SampleTopP(logits, d.opts.Temperature, d.opts.TopP, d.rng, d.probs[:len(logits)], d.order[:len(logits)]))
}

// Argmax returns the index of the largest value (the first one on ties).
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// SampleTopP draws an index from softmax(logits/temperature) restricted to
// the most likely indices whose cumulative probability first reaches topP
// (all of them when topP ≤ 0 or ≥ 1). probs and order are scratch space of
// len(logits).
func SampleTopP(logits []float32, temperature, topP float64, rng *rand.Rand, probs []float64, order []int) int {
	mx := float64(logits[Argmax(logits)])
	var sum float64
	for i, v := range logits {
		probs[i] = math.Exp((float64(v) - mx) / temperature)
		sum += probs[i]
		order[i] = i
	}
	n := len(logits)
	if topP > 0 && topP < 1 {
		sort.Slice(order, func(a, b int) bool { return probs[order[a]] > probs[order[b]] })
		var cum float64
		for i, idx := range order {
			cum += probs[idx] / sum
			if cum >= topP {
				n = i + 1
				break
			}
		}
		sum = 0
		for _, idx := range order[:n] {
			sum += probs[idx]
		}
	}
	u := rng.Float64() * sum
	for _, idx := range order[:n] {
		u -= probs[idx]
		if u <= 0 {
			return idx
		}
	}
	return order[n-1]
}
