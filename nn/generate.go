package nn

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/goseal/ttt/hf"
)

// GenerateOptions control decoding. Temperature 0 is greedy (argmax);
// otherwise tokens are sampled from softmax(logits/Temperature) restricted to
// the smallest set of most likely tokens whose probability reaches TopP
// (tied tokens are kept or dropped together; see Backend.Sample).
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
	defer d.ws.free()
	defer d.cache.Free(m.B)
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
	pass  pass
	rows  []int32   // the batch rows whose logits pick the next tokens
	u     []float32 // one uniform draw per such row, when sampling
	toks  []int32
}

// step runs the batch through the model with the cache, then picks a token
// from the logits of each row listed in last. The chosen ids are the only
// thing read back.
func (d *decoder) step(b *Batch, kvRows []int32, last []int) ([]int32, error) {
	m, B, ws := d.m, d.m.B, d.ws
	if err := m.validate(b, d.cache.K[0].Rows); err != nil {
		return nil, err
	}
	p := &d.pass
	m.upload(p, ws, b)
	p.kc, p.vc, p.kvRows = d.cache.K, d.cache.V, ws.upload("kvRows", kvRows)
	x := ws.get("x", len(b.IDs), m.Config.Hidden)
	B.Embed(x, m.Embed, p.ids)
	for l := range m.Blocks {
		m.blockForward(ws, l, x, p, d.ad, nil)
	}
	d.rows = d.rows[:0]
	for _, r := range last {
		d.rows = append(d.rows, int32(r))
	}
	h := ws.get("last", len(last), m.Config.Hidden)
	B.Embed(h, x, ws.upload("lastRows", d.rows))
	B.RMSNorm(h, h, m.Norm, m.Config.RMSNormEps)
	logits := ws.get("logits", len(last), m.Config.VocabSize)
	B.MatMul(logits, h, m.LMHead, false, true, 1, false)
	var u *Tensor
	if d.opts.Temperature > 0 {
		d.u = d.u[:0]
		for range last {
			d.u = append(d.u, d.rng.Float32())
		}
		u = ws.get("u", len(last), 1)
		B.Upload(u, d.u)
	}
	next := ws.typed("next", hf.I32, len(last), 1)
	B.Sample(next, logits, u, float32(d.opts.Temperature), float32(d.opts.TopP))
	if cap(d.toks) < len(last) {
		d.toks = make([]int32, len(last))
	}
	d.toks = d.toks[:len(last)]
	if err := B.DownloadInts(d.toks, next); err != nil {
		return nil, err
	}
	return d.toks, nil
}
