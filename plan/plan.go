// Package plan is the memory and performance model of the TTT cycle: how
// much memory a request needs before any work is done, whether training
// must recompute activations to fit, and, for a whole SEAL request, the
// FLOPs and bytes of each phase and their roofline lower bound on Apple
// chips. The server plans every request with it; `seal-ttt bench --plan`
// prints it.
//
// Every count names what it counts, so that a reader can check it against
// the code in nn, lora and gpu. Activations, gradients, the KV cache and
// optimizer state are float32 (4 bytes) on every backend; weights are 4
// bytes per parameter on the CPU backend, which widens them at load, and
// their stored dtype's size on the Metal backend, which maps the files
// without copying.
package plan

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goseal/ttt/hf"
)

// Backend is the compute backend a model runs on, as far as memory and
// traffic are concerned.
type Backend int

// The backends.
const (
	// CPU widens every weight to float32 at load: 4 bytes per parameter.
	CPU Backend = iota
	// Metal keeps weights in their stored dtype, inside no-copy buffers over
	// the memory-mapped files: 2 bytes per parameter for bf16 or f16.
	Metal
)

// String returns the backend's --backend name.
func (b Backend) String() string {
	if b == Metal {
		return "metal"
	}
	return "cpu"
}

// ParseBackend reads a --backend name: "cpu" or "metal".
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "cpu":
		return CPU, nil
	case "metal":
		return Metal, nil
	}
	return 0, fmt.Errorf("backend %q: want cpu or metal", s)
}

// Model is a model's shape as a backend holds it.
type Model struct {
	Cfg     *hf.Config
	Backend Backend
	// DType is the weights' stored dtype; the CPU backend ignores it.
	DType hf.DType
}

// StoredDType is the weight dtype a config's torch_dtype names (bf16, f16,
// else f32), for plans made from a config alone.
func StoredDType(c *hf.Config) hf.DType {
	switch c.TorchDType {
	case "bfloat16":
		return hf.BF16
	case "float16":
		return hf.F16
	}
	return hf.F32
}

// WeightSize is the bytes of one weight parameter as the backend holds it.
func (m Model) WeightSize() int64 {
	if m.Backend == CPU {
		return 4
	}
	return int64(m.DType.Size())
}

// BlockParams is one block's parameter count: the seven linear layers, the
// q/k/v biases when the model has them, and the two norms' weights.
func BlockParams(c *hf.Config) int64 {
	n := 2 * int64(c.Hidden)
	for mod := range hf.NumModules {
		out, in := c.LinearShape(mod)
		n += int64(out) * int64(in)
	}
	if c.AttentionBias {
		n += int64(c.Heads*c.HeadDim + 2*c.KVHeads*c.HeadDim)
	}
	return n
}

// Params is the model's parameter count: layers · BlockParams, the
// embedding table (vocab · hidden), the LM head when untied (the same
// again), and the final norm (hidden).
func Params(c *hf.Config) int64 {
	emb := int64(c.VocabSize) * int64(c.Hidden)
	if !c.TieEmbeddings {
		emb *= 2
	}
	return int64(c.Layers)*BlockParams(c) + emb + int64(c.Hidden)
}

// WeightBytes is Params · WeightSize: the model's memory once loaded.
func (m Model) WeightBytes() int64 { return Params(m.Cfg) * m.WeightSize() }

// KVBytesPerToken is the KV cache's size per token: keys and values of
// every layer, 2 · layers · kvHeads · headDim · 4 bytes.
func KVBytesPerToken(c *hf.Config) int64 {
	return 2 * int64(c.Layers) * int64(c.KVHeads) * int64(c.HeadDim) * 4
}

// LoRA is the adapter a request trains.
type LoRA struct {
	Rank int
	// Targets are the adapted modules of each adapted block.
	Targets []hf.Module
	// Layers, when positive, adapts only the last Layers blocks.
	Layers int
	// Dropout is whether LoRA dropout is on (its masked input is kept).
	Dropout bool
}

// layers is the number of adapted blocks.
func (a LoRA) layers(c *hf.Config) int64 {
	if a.Layers > 0 && a.Layers < c.Layers {
		return int64(a.Layers)
	}
	return int64(c.Layers)
}

// Params is the adapter's parameter count: rank · (in + out) for A and B of
// every adapted module of every adapted block.
func (a LoRA) Params(c *hf.Config) int64 {
	var n int64
	for _, mod := range a.Targets {
		out, in := c.LinearShape(mod)
		n += int64(a.Rank) * int64(in+out)
	}
	return a.layers(c) * n
}

// widestInput is the widest input of an adapted module (the size of
// dropout's masked copy of it), 0 without targets.
func (a LoRA) widestInput(c *hf.Config) int64 {
	var w int64
	for _, mod := range a.Targets {
		_, in := c.LinearShape(mod)
		w = max(w, int64(in))
	}
	return w
}

// Memory planning. Generation of a group of g prompts, the longest P tokens,
// with M new tokens each (nn.Model.Generate):
//
//	KV cache     g·(P+M) · KVBytesPerToken
//	prefill      min(prefillTokens, g·P) rows, at least P, of the forward
//	             pass's per-token scratch (forwardTokenFloats · 4)
//	logits       g · vocab · 4 (the last row of each sequence), twice for
//	             sampling's scratch
//
// Training a micro-batch of rows sequences of width W (max_seq_length, or
// the longest sequence with padding "longest"), T = rows·W tokens
// (nn.Trainer.LossAndGrad), per token:
//
//	kept         what the backward pass reads: every block's blockActFloats
//	             without recomputation; with it, every block's input
//	             (hidden) plus one block's blockActFloats, recomputed just
//	             before that block's backward pass
//	scratch      trainScratchFloats: the shared buffers of the forward and
//	             backward passes, sized for the widest use
//
// and once per micro-batch:
//
//	logits       min(T, max(16, 2^24/vocab)) rows · vocab · 4 (the loss
//	             runs in chunks of rows)
//	adapter      16 bytes per adapter parameter: A and B, their gradients
//	             and AdamW's two moments
//
// The model's own weights (Model.WeightBytes) are taken off the budget once.

// prefillTokens bounds the tokens of one prefill pass (nn's prefillRows).
const prefillTokens = 2048

// maxGroup bounds how many prompts are generated together: beyond this,
// batching gains little and the KV cache grows.
const maxGroup = 64

// Plan is the memory model of one loaded model under a budget.
type Plan struct {
	Model
	// Budget is the memory in bytes a request may use on top of the model
	// (the process's limit less the model's weights).
	Budget int64
}

// New returns the plan for m under maxMemory bytes for the whole process;
// it fails when the weights alone do not fit.
func New(m Model, maxMemory int64) (*Plan, error) {
	w := m.WeightBytes()
	if w >= maxMemory {
		return nil, fmt.Errorf("the model's weights take %s (%d bytes per parameter on the %s backend), more than the memory limit of %s",
			FormatBytes(w), m.WeightSize(), m.Backend, FormatBytes(maxMemory))
	}
	return &Plan{Model: m, Budget: maxMemory - w}, nil
}

// forwardTokenFloats is the forward pass's scratch per token in generation:
// the residual, its norm and the projection back (3·hidden), q and the
// attention output (2·heads·headDim), k and v (2·kvHeads·headDim), gate, up
// and their product (3·intermediate), one log-sum-exp per head.
func forwardTokenFloats(c *hf.Config) int64 {
	q, kv := int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	return 3*int64(c.Hidden) + 2*q + 2*kv + 3*int64(c.Intermediate) + int64(c.Heads)
}

// blockActFloats is what one block keeps per token for its backward pass
// (nn's blockActs): its input and the residual after attention
// (2·hidden), q and the attention output (2·heads·headDim), k and v
// (2·kvHeads·headDim), the log-sum-exps (heads), gate and up
// (2·intermediate).
func blockActFloats(c *hf.Config) int64 {
	q, kv := int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	return 2*int64(c.Hidden) + 2*q + 2*kv + int64(c.Heads) + 2*int64(c.Intermediate)
}

// trainScratchFloats is the training pass's shared scratch per token: the
// residual, the norm, the projection back, the final norm and its gradient,
// the residual's gradient, the norm's input gradient and the norm's
// backward (8·hidden); the MLP product, its gradient and gate's and up's
// (4·intermediate); the attention output's and q's gradients
// (2·heads·headDim); k's and v's (2·kvHeads·headDim); the LoRA's rank-wide
// product and its gradient (2·rank); the per-token loss and three int32
// columns (ids, positions, targets); with dropout, the masked input and its
// gradient (2 · the widest adapted input).
func trainScratchFloats(c *hf.Config, a LoRA) int64 {
	q, kv := int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	n := 8*int64(c.Hidden) + 4*int64(c.Intermediate) + 2*q + 2*kv + 2*int64(a.Rank) + 4
	if a.Dropout {
		n += 2 * a.widestInput(c)
	}
	return n
}

// keptFloats is what the backward pass needs kept per token: every block's
// activations, or with recomputation every block's input and one block's
// activations.
func keptFloats(c *hf.Config, recompute bool) int64 {
	if recompute {
		return int64(c.Layers)*int64(c.Hidden) + blockActFloats(c)
	}
	return int64(c.Layers) * blockActFloats(c)
}

// lossChunkRows is how many rows of logits the loss holds at once (nn's
// chunk), at most T.
func lossChunkRows(c *hf.Config, T int64) int64 {
	return min(T, max(16, (16<<20)/int64(c.VocabSize)))
}

// GenerateBytes estimates the peak memory of generating group prompts of at
// most promptLen tokens with maxNew new tokens each.
func (p *Plan) GenerateBytes(group, promptLen, maxNew int) int64 {
	c := p.Cfg
	g := int64(group)
	rows := max(int64(promptLen), min(int64(prefillTokens), g*int64(promptLen)))
	return g*int64(promptLen+maxNew)*KVBytesPerToken(c) +
		rows*forwardTokenFloats(c)*4 +
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

// Micro is one training micro-batch: Rows sequences of Width tokens.
type Micro struct {
	Rows, Width int
	LoRA        LoRA
}

// TrainBytes estimates the peak memory of training on micro-batches of shape
// t, with or without recomputing each block's activations in the backward
// pass.
func (p *Plan) TrainBytes(t Micro, recompute bool) int64 {
	c := p.Cfg
	T := int64(t.Rows) * int64(t.Width)
	perToken := 4 * (keptFloats(c, recompute) + trainScratchFloats(c, t.LoRA))
	return T*perToken + lossChunkRows(c, T)*int64(c.VocabSize)*4 + 16*t.LoRA.Params(c)
}

// Checkpoint decides whether training on micro-batches t recomputes each
// block's activations (activation checkpointing): only when the plan
// without recomputation exceeds the budget. It returns the choice and the
// planned bytes under it, which may still exceed the budget.
func (p *Plan) Checkpoint(t Micro) (recompute bool, need int64) {
	if need := p.TrainBytes(t, false); need <= p.Budget {
		return false, need
	}
	return true, p.TrainBytes(t, true)
}

// DefaultMaxMemory is the default memory limit off a Mac's GPU: three
// quarters of the machine's physical memory (0 when it cannot be read).
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
