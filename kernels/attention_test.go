package kernels_test

import (
	"encoding/binary"
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// TestAttentionArguments checks that the attention launchers refuse bad
// shapes and short buffers, naming what is wrong, before encoding anything.
func TestAttentionArguments(t *testing.T) {
	d, l := library(t)
	buf := func(n int) kernels.Buf {
		b, err := d.NewBuffer(n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Release)
		return kernels.Whole(b)
	}
	sh := nn.AttnShape{Heads: 4, KVHeads: 2, HeadDim: 64}
	segs := []nn.Segment{{Q: 0, N: 40, KV: 0, Past: 2}}
	qb, kb := buf(4*40*4*64), buf(4*42*2*64)
	lse := buf(4 * 40 * 4)
	table := buf(4 * len(kernels.AttentionBackwardBlocks(segs, sh)))
	fwd := func(segs []nn.Segment, sh nn.AttnShape, q, table kernels.Buf) func(*metal.Encoder) error {
		return func(e *metal.Encoder) error { return l.Attention(e, qb, lse, q, kb, kb, table, segs, sh) }
	}
	tests := []struct {
		name   string
		encode func(*metal.Encoder) error
		want   string
	}{
		{"head dimension", fwd(segs, nn.AttnShape{Heads: 4, KVHeads: 2, HeadDim: 96}, qb, table), "head dimension 96"},
		{"groups", fwd(segs, nn.AttnShape{Heads: 7, KVHeads: 2, HeadDim: 64}, qb, table), "7 heads do not divide into 2"},
		{"negative", fwd([]nn.Segment{{N: 3, Past: -1}}, sh, qb, table), "segment 0: negative field"},
		{"short q", fwd(segs, sh, buf(4*39*4*64), table), "attention: q holds 39936 bytes, needs 40960"},
		{"short table", fwd(segs, sh, qb, buf(4*9)), "block table holds 36 bytes, needs 40"},
		{"decode scratch", func(e *metal.Encoder) error {
			return l.AttentionDecode(e, qb, lse, qb, kb, kb, buf(4*len(kernels.AttentionDecodeBlocks(segs))), buf(64), segs, sh)
		}, "scratch holds 64 bytes"},
		{"backward lse", func(e *metal.Encoder) error {
			return l.AttentionBackward(e, qb, kb, kb, qb, qb, kernels.Buf{}, qb, kb, kb, table, segs, sh)
		}, "lse is nil"},
		{"backward dk", func(e *metal.Encoder) error {
			return l.AttentionBackward(e, qb, buf(4*41*2*64), kb, qb, qb, lse, qb, kb, kb, table, segs, sh)
		}, "dk holds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantLaunchError(t, d, tc.encode, tc.want) })
	}
}

// attnBench holds an attention call's buffers, zero-filled.
type attnBench struct {
	q, k, v, out, lse, dq, dk, dv, dout, table, scratch kernels.Buf
}

func newAttnBench(b *testing.B, d *metal.Device, segs []nn.Segment, sh nn.AttnShape, table []uint32, scratch int) attnBench {
	qRows, kvRows := 0, 0
	for _, s := range segs {
		qRows, kvRows = max(qRows, s.Q+s.N), max(kvRows, s.KV+s.Past+s.N)
	}
	buf := func(n int) kernels.Buf {
		buf, err := d.NewBuffer(max(n, 4))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(buf.Release)
		return kernels.Whole(buf)
	}
	qn, kn := 4*qRows*sh.Heads*sh.HeadDim, 4*kvRows*sh.KVHeads*sh.HeadDim
	t := buf(4 * len(table))
	for i, v := range table {
		binary.LittleEndian.PutUint32(t.Buffer.Bytes()[4*i:], v)
	}
	return attnBench{q: buf(qn), k: buf(kn), v: buf(kn), out: buf(qn), lse: buf(4 * qRows * sh.Heads),
		dq: buf(qn), dk: buf(kn), dv: buf(kn), dout: buf(qn), table: t, scratch: buf(scratch)}
}

// qwenShape is Qwen2.5-0.5B's attention: 14 query heads, 2 key/value heads.
var qwenShape = nn.AttnShape{Heads: 14, KVHeads: 2, HeadDim: 64}

// BenchmarkAttentionPrefill512: one segment of 512 tokens; GFLOP/s counts
// the causal half of Q·Kᵀ and P·V.
func BenchmarkAttentionPrefill512(b *testing.B) {
	d, l := library(b)
	segs := []nn.Segment{{N: 512}}
	x := newAttnBench(b, d, segs, qwenShape, kernels.AttentionBlocks(segs), 0)
	runBench(b, d, func(e *metal.Encoder) error {
		return l.Attention(e, x.out, x.lse, x.q, x.k, x.v, x.table, segs, qwenShape)
	})
	flops := 2 * 2 * 512.0 * 513 / 2 * 64 * 14
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	roofline(b, flops, 4*512*64*(14+2+2+14))
}

// BenchmarkAttentionDecode16x1000: 16 sequences decoding one token each
// after 1000; bytes are the keys and values read.
func BenchmarkAttentionDecode16x1000(b *testing.B) {
	d, l := library(b)
	var segs []nn.Segment
	for i := range 16 {
		segs = append(segs, nn.Segment{Q: i, N: 1, KV: i * 1001, Past: 1000})
	}
	x := newAttnBench(b, d, segs, qwenShape, kernels.AttentionDecodeBlocks(segs), kernels.AttentionDecodeScratch(segs, qwenShape))
	b.SetBytes(16 * 1001 * 2 * 2 * 64 * 4)
	runBench(b, d, func(e *metal.Encoder) error {
		return l.AttentionDecode(e, x.out, x.lse, x.q, x.k, x.v, x.table, x.scratch, segs, qwenShape)
	})
	roofline(b, 2*2*16*1001*64*14, 16*1001*2*2*64*4)
}

// BenchmarkAttentionBackward512: the gradients of the prefill above;
// GFLOP/s counts the causal half of its five products.
func BenchmarkAttentionBackward512(b *testing.B) {
	d, l := library(b)
	segs := []nn.Segment{{N: 512}}
	x := newAttnBench(b, d, segs, qwenShape, kernels.AttentionBackwardBlocks(segs, qwenShape), 0)
	runBench(b, d, func(e *metal.Encoder) error {
		return l.AttentionBackward(e, x.dq, x.dk, x.dv, x.dout, x.out, x.lse, x.q, x.k, x.v, x.table, segs, qwenShape)
	})
	flops := 5 * 2 * 512.0 * 513 / 2 * 64 * 14
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	roofline(b, flops, 4*512*64*(3*14+2*2+2*2+14))
}
