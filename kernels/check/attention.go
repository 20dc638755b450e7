package check

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// seg is a segment's shape; attnLayout places it in the tensors.
type seg struct{ n, past, keys int }

// attnLayout places segments one after another, with a spare query row and
// two spare key rows between them (rows no kernel may touch), and returns
// them with the rows q and k need.
func attnLayout(specs []seg) (segs []nn.Segment, qRows, kvRows int) {
	for _, s := range specs {
		segs = append(segs, nn.Segment{Q: qRows, N: s.n, KV: kvRows, Past: s.past, Keys: s.keys})
		qRows += s.n + 1
		kvRows += s.past + s.n + 2
	}
	return segs, qRows, kvRows
}

func (s seg) String() string {
	if s.keys > 0 {
		return fmt.Sprintf("%d@%d/%d", s.n, s.past, s.keys)
	}
	return fmt.Sprintf("%d@%d", s.n, s.past)
}

// attnShapeName names a case: head dimension, heads, and each segment as
// N@Past (or N@Past/Keys).
func attnShapeName(sh nn.AttnShape, specs []seg, note string) string {
	parts := make([]string, len(specs))
	for i, s := range specs {
		parts[i] = s.String()
	}
	return strings.TrimSpace(fmt.Sprintf("d=%d heads=%d/%d segs=%s %s", sh.HeadDim, sh.Heads, sh.KVHeads, strings.Join(parts, ","), note))
}

// attnTol is the tolerance of the attention cases. A score is a D-term
// float32 dot product of terms below 2 in magnitude (q is drawn from
// [-2, 2), k from [-1, 1)) times 1/sqrt(D): the two sides sum in different
// orders, and D roundings of random sign, each at most 2^-24 of a partial
// sum, leave it off by well under D·2^-23. An error δ in the scores moves
// an output, a probability-weighted mean of values in [-1, 1), by at most
// 2δ; the sums over K keys add K roundings of 2^-24 relative, and the
// exponentials (exp2 of scores times log2 e on the device) a few more. The
// backward's dK and dV sum over up to nq queries of every head of a group:
// nq more roundings. (D + K + nq)·2^-22 bounds all of it, while a key
// masked wrongly moves an output by about its probability, 1/K or more,
// ten times the bound or more for the K (at most 600) of the cases.
func attnTol(d, keys, nq int) float64 { return float64(d+keys+nq) * 0x1p-22 }

// attnCases are the attention cases: the forward over query blocks, the
// decode kernels, and the backward, at head dimensions 32, 64 and 128,
// group ratios 1, 2, 7 and 12 (decode threadgroups take 6 heads of 12),
// ragged segments, key padding and single queries.
func attnCases() []Case {
	fwd := []struct {
		sh    nn.AttnShape
		specs []seg
		lse   bool
	}{
		{nn.AttnShape{Heads: 2, KVHeads: 1, HeadDim: 32}, []seg{{1, 0, 0}, {37, 0, 0}, {5, 20, 0}}, true},
		{nn.AttnShape{Heads: 7, KVHeads: 1, HeadDim: 64}, []seg{{45, 0, 0}, {40, 0, 29}, {1, 70, 0}}, true},
		{nn.AttnShape{Heads: 2, KVHeads: 2, HeadDim: 128}, []seg{{33, 9, 0}, {20, 0, 13}, {9, 200, 0}}, true},
		{nn.AttnShape{Heads: 4, KVHeads: 2, HeadDim: 64}, []seg{{70, 3, 0}}, false},
		{nn.AttnShape{Heads: 4, KVHeads: 2, HeadDim: 16}, []seg{{13, 0, 9}, {40, 0, 0}}, true},
	}
	dec := []struct {
		sh    nn.AttnShape
		specs []seg
	}{
		{nn.AttnShape{Heads: 14, KVHeads: 2, HeadDim: 64}, []seg{{1, 0, 0}, {1, 255, 0}, {1, 600, 550}, {1, 519, 0}}},
		{nn.AttnShape{Heads: 4, KVHeads: 4, HeadDim: 128}, []seg{{1, 300, 0}, {3, 10, 0}}},
		{nn.AttnShape{Heads: 24, KVHeads: 2, HeadDim: 32}, []seg{{1, 513, 0}, {2, 7, 5}}},
		{nn.AttnShape{Heads: 4, KVHeads: 2, HeadDim: 16}, []seg{{1, 12, 0}, {1, 300, 0}}},
	}
	bwd := []struct {
		sh    nn.AttnShape
		specs []seg
	}{
		{nn.AttnShape{Heads: 2, KVHeads: 1, HeadDim: 32}, []seg{{37, 0, 0}, {5, 20, 0}, {1, 3, 0}}},
		{nn.AttnShape{Heads: 7, KVHeads: 1, HeadDim: 64}, []seg{{29, 0, 20}, {18, 5, 0}}},
		{nn.AttnShape{Heads: 2, KVHeads: 2, HeadDim: 128}, []seg{{21, 11, 0}, {9, 0, 5}}},
		{nn.AttnShape{Heads: 4, KVHeads: 2, HeadDim: 16}, []seg{{14, 0, 10}, {33, 0, 0}}},
	}
	var cs []Case
	for _, c := range fwd {
		cs = append(cs, attnCase(false, c.sh, c.specs, c.lse))
	}
	for _, c := range dec {
		cs = append(cs, attnCase(true, c.sh, c.specs, true))
	}
	for _, c := range bwd {
		cs = append(cs, attnBackwardCase(c.sh, c.specs))
	}
	return cs
}

// attnInputs draws q (in [-2, 2), for scores that spread the softmax), k
// and v for a layout.
func attnInputs(sh nn.AttnShape, qRows, kvRows int, seed uint64) (q, k, v []float32) {
	q = random(qRows*sh.Heads*sh.HeadDim, seed)
	for i := range q {
		q[i] *= 2
	}
	k = random(kvRows*sh.KVHeads*sh.HeadDim, seed+1)
	v = random(kvRows*sh.KVHeads*sh.HeadDim, seed+2)
	return q, k, v
}

func maxKeys(segs []nn.Segment) int {
	m := 0
	for _, s := range segs {
		m = max(m, s.Past+s.N)
	}
	return m
}

func u32bytes(t []uint32) []byte {
	b := make([]byte, 0, 4*len(t))
	for _, v := range t {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

// attnCase runs the forward (decode: the split-key kernels) and compares
// out and, when asked, lse, whole: rows outside the segments must keep
// their initial values.
func attnCase(decode bool, sh nn.AttnShape, specs []seg, withLSE bool) Case {
	segs, qRows, kvRows := attnLayout(specs)
	kernel := fmt.Sprintf("attention d%d", sh.HeadDim)
	if decode {
		kernel = fmt.Sprintf("attention decode d%d", sh.HeadDim)
	}
	note := ""
	if !withLSE {
		note = "no lse"
	}
	seed := uint64(sh.HeadDim*1009 + sh.Heads*31 + qRows)
	return Case{
		File:   "attention.metal",
		Family: 7, // simdgroup matrices
		Kernel: kernel,
		Shape:  attnShapeName(sh, specs, note),
		Tol:    attnTol(sh.HeadDim, maxKeys(segs), 0),
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			q, k, v := attnInputs(sh, qRows, kvRows, seed)
			out0 := random(qRows*sh.Heads*sh.HeadDim, seed+3)
			lse0 := random(qRows*sh.Heads, seed+4)
			want, wantLSE := append([]float32(nil), out0...), append([]float32(nil), lse0...)
			var lseRef []float32
			if withLSE {
				lseRef = wantLSE
			}
			cpu.Attention(want, lseRef, q, k, v, segs, sh)
			var table []uint32
			scratch := 4
			if decode {
				table = kernels.AttentionDecodeBlocks(segs)
				scratch = max(scratch, kernels.AttentionDecodeScratch(segs, sh))
			} else {
				table = kernels.AttentionBlocks(segs)
			}
			ins := [][]byte{f32bytes(out0), f32bytes(lse0), f32bytes(q), f32bytes(k), f32bytes(v), u32bytes(table), make([]byte, scratch)}
			outs, t, err := launch(dev, ins, func(e *metal.Encoder, b []*metal.Buffer) error {
				lse := kernels.Buf{}
				if withLSE {
					lse = kernels.Whole(b[1])
				}
				w := func(i int) kernels.Buf { return kernels.Whole(b[i]) }
				if decode {
					return lib.AttentionDecode(e, w(0), lse, w(2), w(3), w(4), w(5), w(6), segs, sh)
				}
				return lib.Attention(e, w(0), lse, w(2), w(3), w(4), w(5), segs, sh)
			})
			if err != nil {
				return nil, nil, t, err
			}
			// Without lse, its buffer must be left alone too.
			return append(f32s(outs[0]), f32s(outs[1])...), append(want, wantLSE...), t, nil
		},
	}
}

// attnBackwardCase runs the backward on the reference forward's out and
// lse and compares dq, dk and dv, whole.
func attnBackwardCase(sh nn.AttnShape, specs []seg) Case {
	segs, qRows, kvRows := attnLayout(specs)
	seed := uint64(sh.HeadDim*7919 + sh.Heads*13 + qRows)
	nq := 0
	for _, s := range segs {
		nq = max(nq, s.N)
	}
	return Case{
		File:   "attention.metal",
		Family: 7, // simdgroup matrices
		Kernel: fmt.Sprintf("attention backward d%d", sh.HeadDim),
		Shape:  attnShapeName(sh, specs, ""),
		Tol:    attnTol(sh.HeadDim, maxKeys(segs), nq*sh.Heads/sh.KVHeads),
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			q, k, v := attnInputs(sh, qRows, kvRows, seed)
			qn, kn := qRows*sh.Heads*sh.HeadDim, kvRows*sh.KVHeads*sh.HeadDim
			out, lse := make([]float32, qn), make([]float32, qRows*sh.Heads)
			cpu.Attention(out, lse, q, k, v, segs, sh)
			dout := random(qn, seed+3)
			dq0, dk0, dv0 := random(qn, seed+4), random(kn, seed+5), random(kn, seed+6)
			dq, dk, dv := append([]float32(nil), dq0...), append([]float32(nil), dk0...), append([]float32(nil), dv0...)
			cpu.AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, segs, sh)
			table := kernels.AttentionBackwardBlocks(segs, sh)
			ins := [][]byte{f32bytes(dq0), f32bytes(dk0), f32bytes(dv0), f32bytes(dout), f32bytes(out), f32bytes(lse),
				f32bytes(q), f32bytes(k), f32bytes(v), u32bytes(table)}
			outs, t, err := launch(dev, ins, func(e *metal.Encoder, b []*metal.Buffer) error {
				w := func(i int) kernels.Buf { return kernels.Whole(b[i]) }
				return lib.AttentionBackward(e, w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7), w(8), w(9), segs, sh)
			})
			if err != nil {
				return nil, nil, t, err
			}
			got := append(append(f32s(outs[0]), f32s(outs[1])...), f32s(outs[2])...)
			return got, append(append(dq, dk...), dv...), t, nil
		},
	}
}
