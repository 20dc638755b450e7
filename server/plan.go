package server

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goseal/ttt/hf"
)

// Memory planning. Every request's peak memory is estimated from the model's
// configuration and the request's shape before any work, and a request that
// cannot fit the budget (--max_memory) is refused with a ValueError. The
// estimates count float32 activations (4 bytes), as the CPU backend keeps
// them; each names what it counts so that a reader can check it against the
// code in nn and lora.
//
// Generation of a group of g prompts, the longest P tokens, with M new tokens:
//
//	KV cache     g·(P+M) · 2·layers·kvHeads·headDim · 4
//	prefill      min(prefillTokens, g·P) rows, at least P, of the forward
//	             pass's per-token activations (see forwardTokenBytes)
//	logits       g · vocab · 4 (the last row of each sequence), twice for
//	             sampling's scratch
//
// Training a micro-batch of rows sequences of width W (max_seq_length, or
// the longest sequence with padding "longest"), T = rows·W tokens:
//
//	activations  T · trainTokenBytes: every block keeps its input, q, k,
//	             v, attention output and log-sum-exp, the residual after
//	             attention, gate and up, and each adapted module's rank-wide
//	             product (and its input again for dropout's mask); the
//	             backward pass needs one more block's worth at once
//	logits       min(T, max(16, 2^24/vocab)) rows · vocab · 4 (the loss is
//	             computed in chunks of rows)
//	adapter      every adapted module's A, B, their gradients and AdamW's
//	             two moments: 6·rank·(in+out)·4 per module and block
//
// The model's own weights are counted once at load (the CPU backend widens
// them to float32: 4 bytes per parameter) and taken off the budget.

// prefillTokens bounds the tokens of one prefill pass (nn's prefillRows).
const prefillTokens = 2048

// maxGroup bounds how many prompts are generated together: beyond this,
// batching gains little and the KV cache grows.
const maxGroup = 64

// Plan is the memory model of one loaded model under a budget.
type Plan struct {
	Cfg *hf.Config
	// Budget is the memory in bytes a request may use on top of the model
	// (--max_memory less the model's weights).
	Budget int64
}

// NewPlan returns the plan for cfg under maxMemory bytes for the whole
// process; it fails when the weights alone do not fit.
func NewPlan(cfg *hf.Config, maxMemory int64) (*Plan, error) {
	w := WeightBytes(cfg)
	if w >= maxMemory {
		return nil, fmt.Errorf("the model's weights take %s as float32, more than --max_memory %s", FormatBytes(w), FormatBytes(maxMemory))
	}
	return &Plan{Cfg: cfg, Budget: maxMemory - w}, nil
}

// WeightBytes is the model's parameter count times 4 (float32).
func WeightBytes(c *hf.Config) int64 {
	q, kv := int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	h, in := int64(c.Hidden), int64(c.Intermediate)
	block := h*q + 2*h*kv + q*h + 3*h*in + 2*h
	if c.AttentionBias {
		block += q + 2*kv
	}
	emb := int64(c.VocabSize) * h
	if !c.TieEmbeddings {
		emb *= 2
	}
	return 4 * (int64(c.Layers)*block + emb + h)
}

// KVBytesPerToken is the KV cache's size per token: 2·layers·kvHeads·headDim·4.
func KVBytesPerToken(c *hf.Config) int64 {
	return 2 * int64(c.Layers) * int64(c.KVHeads) * int64(c.HeadDim) * 4
}

// forwardTokenBytes is the forward pass's scratch per token: the residual,
// its norm, q, k, v, the attention output, the projection back, gate, up
// and their product, as nn's workspace holds them.
func forwardTokenBytes(c *hf.Config) int64 {
	q, kv := int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	return 4 * (3*int64(c.Hidden) + 2*q + 2*kv + 3*int64(c.Intermediate) + int64(c.Heads))
}

// GenerateBytes estimates the peak memory of generating group prompts of at
// most promptLen tokens with maxNew new tokens each.
func (p *Plan) GenerateBytes(group, promptLen, maxNew int) int64 {
	c := p.Cfg
	g := int64(group)
	rows := max(int64(promptLen), min(int64(prefillTokens), g*int64(promptLen)))
	return g*int64(promptLen+maxNew)*KVBytesPerToken(c) +
		rows*forwardTokenBytes(c) +
		2*g*int64(c.VocabSize)*4
}

// GroupSize returns how many prompts (of at most promptLen tokens) to
// generate together within the budget: up to maxGroup, halved until the
// group fits; 0 when not even one prompt fits.
func (p *Plan) GroupSize(n, promptLen, maxNew int) int {
	g := min(n, maxGroup)
	for g > 0 && p.GenerateBytes(g, promptLen, maxNew) > p.Budget {
		g /= 2
	}
	return g
}

// TrainBytes estimates the peak memory of training with micro-batches of
// rows sequences of width tokens, LoRA rank on nMods modules per block.
func (p *Plan) TrainBytes(rows, width, rank, nMods int, dropout bool) int64 {
	c := p.Cfg
	q, kv := int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	h, in := int64(c.Hidden), int64(c.Intermediate)
	perBlock := 2*h + 2*q + 2*kv + int64(c.Heads) + 2*in + int64(nMods*rank)
	if dropout {
		perBlock += int64(nMods) * max(h, in)
	}
	perToken := 4 * (int64(c.Layers)*perBlock + 2*(forwardTokenBytes(c)/4))
	T := int64(rows) * int64(width)
	chunk := min(T, max(16, (16<<20)/int64(c.VocabSize)))
	widest := max(h, q, in)
	adapter := int64(c.Layers*nMods) * 6 * int64(rank) * 2 * widest * 4
	return T*perToken + chunk*int64(c.VocabSize)*4 + adapter
}

// DefaultMaxMemory is the default --max_memory: three quarters of the
// machine's physical memory (0 when it cannot be read).
func DefaultMaxMemory() int64 {
	return physicalMemory() / 4 * 3
}

// ParseBytes reads a size such as "24GiB", "512MB", "8G" or "1048576".
// Suffixes are binary (K, M, G, T with or without "iB" or "B").
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	u := strings.ToUpper(t)
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10},
		{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10},
		{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(u, suf.s) {
			u, mult = strings.TrimSpace(strings.TrimSuffix(u, suf.s)), suf.m
			break
		}
	}
	f, err := strconv.ParseFloat(u, 64)
	if err != nil || !(f > 0) || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with K, M, G or T (binary units)", s)
	}
	return int64(f * float64(mult)), nil
}

// FormatBytes writes a size in binary units, e.g. "1.5 GiB".
func FormatBytes(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}
