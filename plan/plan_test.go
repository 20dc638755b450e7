package plan

import (
	"testing"

	"github.com/goseal/ttt/hf"
)

// tiny is a shape small enough to count by hand: hidden 4, q width 4, key
// and value width 2, intermediate 8, vocabulary 10, two blocks.
var tiny = &hf.Config{Arch: "qwen2", VocabSize: 10, Hidden: 4, Intermediate: 8, Layers: 2,
	Heads: 2, KVHeads: 1, HeadDim: 2, MaxPositions: 64, AttentionBias: true}

// tinyLoRA is rank 1 on q_proj (4→4) and v_proj (4→2).
var tinyLoRA = LoRA{Rank: 1, Targets: []hf.Module{hf.QProj, hf.VProj}}

// qwen7B is Qwen2.5-7B's config.json (hidden 3584, intermediate 18944, 28
// layers, 28 heads, 4 key/value heads, head dim 128, vocabulary 152064,
// untied, q/k/v biases), stored in bf16.
var qwen7B = &hf.Config{Arch: "qwen2", VocabSize: 152064, Hidden: 3584, Intermediate: 18944, Layers: 28,
	Heads: 28, KVHeads: 4, HeadDim: 128, MaxPositions: 131072, AttentionBias: true, RMSNormEps: 1e-6,
	RopeTheta: 1e6, TorchDType: "bfloat16"}

// sealLoRA is SEAL's TTT server's adapter: rank 32 (lora_rank) on PEFT's
// default targets for qwen2, q_proj and v_proj, no dropout.
var sealLoRA = LoRA{Rank: 32, Targets: []hf.Module{hf.QProj, hf.VProj}}

func TestTinyMemory(t *testing.T) {
	big := int64(1 << 30)
	cpu, err := New(Model{Cfg: tiny, Backend: CPU, DType: hf.BF16}, big)
	if err != nil {
		t.Fatal(err)
	}
	metal, err := New(Model{Cfg: tiny, Backend: Metal, DType: hf.BF16}, big)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		// q 16 + k 8 + v 8 + o 16 + gate 32 + up 32 + down 32 = 144
		// weights, 8 norm weights, 4 + 2 + 2 biases.
		{"block parameters", BlockParams(tiny), 160},
		// 2 blocks, embedding and LM head 2·40, final norm 4.
		{"parameters", Params(tiny), 404},
		{"cpu weights (float32)", cpu.WeightBytes(), 4 * 404},
		{"metal weights (bf16)", metal.WeightBytes(), 2 * 404},
		{"metal budget", metal.Budget, big - 808},
		// keys and values: 2 · 2 layers · 1 head · 2 · 4 bytes.
		{"KV per token", KVBytesPerToken(tiny), 32},
		// rank 1: q (4+4) + v (4+2) = 14 per block, 2 blocks.
		{"adapter parameters", tinyLoRA.Params(tiny), 28},
		// 2 prompts of 3 tokens, 2 new tokens: KV 2·5·32 = 320; one prefill
		// pass of 6 rows of 50 floats (x, xn, o 12; q, att 8; k, v 4;
		// gate, up, act 24; lse 2) = 1200; logits 2·2·10·4 = 160.
		{"generate 2×(3+2)", cpu.GenerateBytes(2, 3, 2), 320 + 1200 + 160},
		// 3 tokens of 4·(kept + scratch): kept 2 blocks · 38 (x, h 8; q,
		// att 8; k, v 4; lse 2; gate, up 16); scratch 82 (8 hidden 32, 4
		// intermediate 32, datt, dq 8, dk, dv 4, u, du 2, loss and ids 4);
		// logits 3·10·4 = 120; adapter 16·28 = 448.
		{"train 1×3", cpu.TrainBytes(Micro{1, 3, tinyLoRA}, false), 3*4*(76+82) + 120 + 448},
		// Recomputing: kept is 2 blocks' inputs (8) and one block's 38.
		{"train 1×3 recomputing", cpu.TrainBytes(Micro{1, 3, tinyLoRA}, true), 3*4*(46+82) + 120 + 448},
		// Dropout keeps the widest adapted input (4) and its gradient.
		{"train 1×3 with dropout", cpu.TrainBytes(Micro{1, 3, LoRA{Rank: 1, Targets: tinyLoRA.Targets, Dropout: true}}, false), 3*4*(76+82+8) + 120 + 448},
		// Only the last block adapted.
		{"one adapted block", LoRA{Rank: 1, Targets: tinyLoRA.Targets, Layers: 1}.Params(tiny), 14},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
	if _, err := New(Model{Cfg: tiny, Backend: CPU}, 1616); err == nil {
		t.Error("a limit equal to the weights accepted")
	}
}

func TestCheckpoint(t *testing.T) {
	m := Micro{1, 3, tinyLoRA}
	for _, c := range []struct {
		budget    int64
		recompute bool
		need      int64
	}{
		{3000, false, 2464}, // fits as it is
		{2464, false, 2464}, // exactly
		{2463, true, 2104},  // one byte short: recompute
		{2000, true, 2104},  // does not fit either way: the smaller need
	} {
		p := &Plan{Model: Model{Cfg: tiny, Backend: CPU}, Budget: c.budget}
		if r, need := p.Checkpoint(m); r != c.recompute || need != c.need {
			t.Errorf("budget %d: recompute %v, need %d; want %v, %d", c.budget, r, need, c.recompute, c.need)
		}
	}
}

func TestPlanFormulas(t *testing.T) {
	cpu := Model{Cfg: qwen7B, Backend: CPU}
	// Qwen2.5-7B: 7.6e9 parameters (published), 4 bytes each as float32
	// on the CPU, 2 as bf16 on Metal.
	if w := cpu.WeightBytes(); w < 4*7.5e9 || w > 4*7.7e9 {
		t.Errorf("weights %s, want about 4 × 7.6e9 bytes", FormatBytes(w))
	}
	if w, w2 := cpu.WeightBytes(), (Model{Cfg: qwen7B, Backend: Metal, DType: StoredDType(qwen7B)}).WeightBytes(); w2*2 != w {
		t.Errorf("bf16 weights %d, want half of %d", w2, w)
	}
	// 2 · 28 layers · 4 kv heads · 128 · 4 bytes = 114,688 bytes per token.
	if kv := KVBytesPerToken(qwen7B); kv != 114688 {
		t.Errorf("KV bytes per token %d, want 114688", kv)
	}
	p := &Plan{Model: cpu, Budget: 16 << 30}
	// The 1 MB request of the robustness test: 30,001 questions, the
	// longest ~1,000 tokens. One allocation for all of them would be
	// 30001 · 1064 · 114688 bytes ≈ 3.4 TiB; a group fits the budget.
	g := p.GroupSize(30001, 1000, 64)
	if g < 1 || p.GenerateBytes(g, 1000, 64) > p.Budget {
		t.Errorf("group of %d: %s over %s", g, FormatBytes(p.GenerateBytes(g, 1000, 64)), FormatBytes(p.Budget))
	}
	if g2 := p.GroupSize(30001, 1000, 64); g2 != g || p.GroupSize(3, 1000, 64) > 3 {
		t.Errorf("group sizes %d, %d", g2, p.GroupSize(3, 1000, 64))
	}
	// SEAL's default training shape fits 16 GiB on top of the weights;
	// 4096 rows of 2048 tokens does not.
	if b := p.TrainBytes(Micro{1, 2048, sealLoRA}, false); b > p.Budget {
		t.Errorf("one row of 2048 tokens plans %s", FormatBytes(b))
	}
	if b := p.TrainBytes(Micro{4096, 2048, sealLoRA}, false); b < 1<<40 {
		t.Errorf("4096 rows of 2048 tokens plan only %s", FormatBytes(b))
	}
}

// TestQwen7BIn32GB: SEAL's request shape on Qwen2.5-7B in bf16 on the Metal
// backend, 2048-token sequences, plans inside 32 GB; under a budget that
// its activations do not fit, it recomputes them and still fits.
func TestQwen7BIn32GB(t *testing.T) {
	m := Model{Cfg: qwen7B, Backend: Metal, DType: StoredDType(qwen7B)}
	r := Request{Sequences: 2, SeqLen: 2048, Epochs: 10, BatchSize: 1, GradAccum: 1, LoRA: sealLoRA,
		Questions: 5, PromptLen: 64, AnswerLen: 64}
	for _, c := range []struct {
		limit     int64
		recompute bool
	}{
		{32e9, false},    // 32 GB: the activations fit as they are
		{20 << 30, true}, // 20 GiB: only with recomputation
	} {
		p, err := New(m, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		e, err := p.Estimate(r)
		if err != nil {
			t.Fatal(err)
		}
		if !e.Fits || e.Peak > c.limit || e.Recompute != c.recompute {
			t.Errorf("limit %s: peak %s, fits %v, recompute %v; want within the limit, recompute %v",
				FormatBytes(c.limit), FormatBytes(e.Peak), e.Fits, e.Recompute, c.recompute)
		}
		t.Logf("limit %s: weights %s, peak %s, recompute %v", FormatBytes(c.limit), FormatBytes(m.WeightBytes()), FormatBytes(e.Peak), e.Recompute)
	}
	// Recomputation keeps 28 blocks' inputs and one block's activations
	// instead of 28 blocks' activations: per token 28·3584 + 53276 floats
	// instead of 28·53276.
	p := &Plan{Model: m}
	mb := Micro{1, 2048, sealLoRA}
	saved := p.TrainBytes(mb, false) - p.TrainBytes(mb, true)
	if want := int64(2048) * 4 * (28*53276 - (28*3584 + 53276)); saved != want {
		t.Errorf("recomputation saves %d bytes, want %d", saved, want)
	}
}

func TestParseBytes(t *testing.T) {
	good := map[string]int64{"1024": 1024, "24GiB": 24 << 30, "512MB": 512 << 20, "8G": 8 << 30, "1.5 GiB": 3 << 29, "2t": 2 << 40}
	for s, want := range good {
		if got, err := ParseBytes(s); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1G", "lots", "1e30G"} {
		if _, err := ParseBytes(s); err == nil {
			t.Errorf("ParseBytes(%q) accepted", s)
		}
	}
	if s := FormatBytes(3 << 29); s != "1.5 GiB" {
		t.Errorf("FormatBytes = %q", s)
	}
}

func TestParseBackend(t *testing.T) {
	for _, b := range []Backend{CPU, Metal} {
		if got, err := ParseBackend(b.String()); err != nil || got != b {
			t.Errorf("ParseBackend(%q) = %v, %v", b.String(), got, err)
		}
	}
	if _, err := ParseBackend("auto"); err == nil {
		t.Error("ParseBackend(auto) accepted")
	}
}
