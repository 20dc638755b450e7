package kernels

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// Attention tiling, as in attention.metal: the forward and the dQ kernel take
// blocks of attnQBlock queries; decoding splits a row's keys into chunks of
// attnChunk; the dK/dV kernel takes blocks of kvBlock(headDim) keys.
const (
	attnQBlock = 32
	attnChunk  = 256
	qBlockLen  = 5 // uints per query block: q0, n, kv, pos0, keys
	kvBlockLen = 7 // uints per key block: kv0, n, j0, q0, qn, past, keys
	chunkLen   = 4 // uints per decode chunk: qrow, kv, key0, key1
	rowLen     = 3 // uints per decode row: qrow, first chunk, chunks
)

// kvBlock is the dK/dV kernel's key block for a head dimension.
func kvBlock(headDim int) int {
	if headDim == 128 {
		return 16
	}
	return 32
}

// attnHeadDims are the head dimensions with kernels.
var attnHeadDims = []int{16, 32, 64, 128}

// segKeys is the number of keys the queries of seg see together.
func segKeys(seg nn.Segment) int {
	if seg.N == 0 {
		return 0
	}
	return seg.Limit(seg.N-1) + 1
}

// AttentionBlocks returns the block table of Attention for segs: one entry
// per block of up to 32 queries of a segment. The caller uploads it into a
// buffer and passes that with the same segs.
func AttentionBlocks(segs []nn.Segment) []uint32 {
	t := make([]uint32, 0, qBlockLen*qBlocks(segs))
	for _, s := range segs {
		for i0 := 0; i0 < s.N; i0 += attnQBlock {
			t = append(t, uint32(s.Q+i0), uint32(min(attnQBlock, s.N-i0)), uint32(s.KV), uint32(s.Past+i0), uint32(s.Keys))
		}
	}
	return t
}

func qBlocks(segs []nn.Segment) int {
	n := 0
	for _, s := range segs {
		n += (max(s.N, 0) + attnQBlock - 1) / attnQBlock
	}
	return n
}

// AttentionBackwardBlocks returns the block table of AttentionBackward for
// segs: AttentionBlocks' entries, then one per block of keys of a segment
// (all Past+N of them, padding included, as their gradients are written).
func AttentionBackwardBlocks(segs []nn.Segment, s nn.AttnShape) []uint32 {
	bk := kvBlock(s.HeadDim)
	t := AttentionBlocks(segs)
	for _, seg := range segs {
		for j0 := 0; j0 < seg.Past+seg.N; j0 += bk {
			t = append(t, uint32(seg.KV+j0), uint32(min(bk, seg.Past+seg.N-j0)), uint32(j0),
				uint32(seg.Q), uint32(seg.N), uint32(seg.Past), uint32(seg.Keys))
		}
	}
	return t
}

func kvBlocks(segs []nn.Segment, bk int) int {
	n := 0
	for _, s := range segs {
		n += (max(s.Past+s.N, 0) + bk - 1) / bk
	}
	return n
}

// AttentionDecodeBlocks returns the table of AttentionDecode for segs: one
// entry per chunk of up to 256 keys of each query row, then one per query
// row naming its chunks.
func AttentionDecodeBlocks(segs []nn.Segment) []uint32 {
	chunks, rows := decodeCounts(segs)
	t := make([]uint32, 0, chunkLen*chunks+rowLen*rows)
	for _, s := range segs {
		for i := 0; i < s.N; i++ {
			keys := s.Limit(i) + 1
			for j0 := 0; j0 < keys; j0 += attnChunk {
				t = append(t, uint32(s.Q+i), uint32(s.KV), uint32(j0), uint32(min(keys, j0+attnChunk)))
			}
		}
	}
	first := 0
	for _, s := range segs {
		for i := 0; i < s.N; i++ {
			n := (s.Limit(i) + attnChunk) / attnChunk
			t = append(t, uint32(s.Q+i), uint32(first), uint32(n))
			first += n
		}
	}
	return t
}

func decodeCounts(segs []nn.Segment) (chunks, rows int) {
	for _, s := range segs {
		for i := 0; i < s.N; i++ {
			chunks += (s.Limit(i) + attnChunk) / attnChunk
		}
		rows += s.N
	}
	return chunks, rows
}

// AttentionDecodeScratch is the size in bytes of the scratch buffer
// AttentionDecode needs for segs: each chunk's partial result per head.
func AttentionDecodeScratch(segs []nn.Segment, s nn.AttnShape) int {
	chunks, _ := decodeCounts(segs)
	return decodeScratch(chunks, s)
}

// decodeScratch is AttentionDecodeScratch for a number of chunks.
func decodeScratch(chunks int, s nn.AttnShape) int { return 4 * chunks * s.Heads * (s.HeadDim + 2) }

// attnRows checks segs and s and returns the rows q needs and the key rows
// k and v need: up to the last key a query sees, or, with allKeys, up to
// Past+N of every segment.
func attnRows(kernel string, segs []nn.Segment, s nn.AttnShape, allKeys bool) (qRows, kvRows int, err error) {
	if s.Heads <= 0 || s.KVHeads <= 0 || s.Heads%s.KVHeads != 0 {
		return 0, 0, fmt.Errorf("kernels: %s: %d heads do not divide into %d key/value heads", kernel, s.Heads, s.KVHeads)
	}
	if !slices.Contains(attnHeadDims, s.HeadDim) {
		return 0, 0, fmt.Errorf("kernels: %s: head dimension %d (have %v)", kernel, s.HeadDim, attnHeadDims)
	}
	for i, seg := range segs {
		if seg.Q < 0 || seg.N < 0 || seg.KV < 0 || seg.Past < 0 || seg.Keys < 0 {
			return 0, 0, fmt.Errorf("kernels: %s: segment %d: negative field in %+v", kernel, i, seg)
		}
		qRows = max(qRows, seg.Q+seg.N)
		if allKeys {
			kvRows = max(kvRows, seg.KV+seg.Past+seg.N)
		} else {
			kvRows = max(kvRows, seg.KV+segKeys(seg))
		}
	}
	if qRows*s.Heads*s.HeadDim >= 1<<32 || kvRows*s.KVHeads*s.HeadDim >= 1<<32 {
		return 0, 0, fmt.Errorf("kernels: %s: %d query rows and %d key rows are too many", kernel, qRows, kvRows)
	}
	return qRows, kvRows, nil
}

// attnParams packs AttnParams.
func attnParams(s nn.AttnShape, hasLSE bool) []byte {
	return params(s.Heads, s.KVHeads, hasLSE, float32(1/math.Sqrt(float64(s.HeadDim))), decodeHeads(s))
}

// decodeHeads is the number of query heads a decode threadgroup takes: the
// largest divisor of the group ratio up to 8 (DEC_HEADS).
func decodeHeads(s nn.AttnShape) int {
	r := s.Heads / s.KVHeads
	for n := min(r, 8); ; n-- {
		if r%n == 0 {
			return n
		}
	}
}

// needTable checks that blocks holds n uints.
func needTable(kernel string, blocks Buf, n int) error {
	return need(kernel, "block table", blocks, 4*n)
}

// Attention encodes out = softmax(q·kᵀ/sqrt(d))·v over segs, causal per
// segment, with the meaning of nn.Attention: q and out are rows ×
// heads·headDim, k and v keyRows × kvHeads·headDim; lse, when lse.Buffer is
// not nil, receives each (row, head)'s log-sum-exp (rows × heads). blocks
// holds AttentionBlocks(segs). Rows outside the segments are left as they
// are. Each threadgroup takes 32 queries of a segment, so segments of a few
// queries (decoding) leave most of it idle: AttentionDecode is for those.
func (l *Library) Attention(e *metal.Encoder, out, lse, q, k, v, blocks Buf, segs []nn.Segment, s nn.AttnShape) error {
	const name = "attention"
	qRows, kvRows, err := attnRows(name, segs, s, false)
	if err != nil {
		return err
	}
	n := qBlocks(segs)
	if n == 0 {
		return nil
	}
	if err := needAttn(name, out, lse, q, k, v, qRows, kvRows, s); err != nil {
		return err
	}
	if err := needTable(name, blocks, qBlockLen*n); err != nil {
		return err
	}
	e.SetPipeline(l.pipes["attn_fwd_d"+strconv.Itoa(s.HeadDim)])
	bind(e, 0, q)
	bind(e, 1, k)
	bind(e, 2, v)
	bind(e, 3, out)
	bind(e, 4, orBuf(lse, out))
	bind(e, 5, blocks)
	e.SetBytes(6, attnParams(s, lse.Buffer != nil))
	e.Dispatch(metal.Size{X: n, Y: s.Heads, Z: 1}, metal.Size{X: 128, Y: 1, Z: 1})
	return nil
}

// AttentionDecode encodes the same attention as Attention for segments of
// few queries over long contexts (decoding): each query row's keys are split
// into chunks whose partial results go to scratch and are merged, in order,
// by a second dispatch. blocks holds AttentionDecodeBlocks(segs); scratch
// holds AttentionDecodeScratch(segs, s) bytes.
func (l *Library) AttentionDecode(e *metal.Encoder, out, lse, q, k, v, blocks, scratch Buf, segs []nn.Segment, s nn.AttnShape) error {
	const name = "attention decode"
	qRows, kvRows, err := attnRows(name, segs, s, false)
	if err != nil {
		return err
	}
	chunks, rows := decodeCounts(segs)
	if rows == 0 {
		return nil
	}
	if err := needAttn(name, out, lse, q, k, v, qRows, kvRows, s); err != nil {
		return err
	}
	if err := needTable(name, blocks, chunkLen*chunks+rowLen*rows); err != nil {
		return err
	}
	if err := need(name, "scratch", scratch, decodeScratch(chunks, s)); err != nil {
		return err
	}
	args := attnParams(s, lse.Buffer != nil)
	d := strconv.Itoa(s.HeadDim)
	e.SetPipeline(l.pipes["attn_decode_d"+d])
	bind(e, 0, q)
	bind(e, 1, k)
	bind(e, 2, v)
	bind(e, 3, scratch)
	bind(e, 4, blocks)
	e.SetBytes(5, args)
	e.Dispatch(metal.Size{X: chunks, Y: s.Heads / decodeHeads(s), Z: 1}, metal.Size{X: 128, Y: 1, Z: 1})
	e.SetPipeline(l.pipes["attn_decode_merge_d"+d])
	bind(e, 0, scratch)
	bind(e, 1, out)
	bind(e, 2, orBuf(lse, out))
	bind(e, 3, Buf{Buffer: blocks.Buffer, Off: blocks.Off + 4*chunkLen*chunks})
	e.SetBytes(4, args)
	e.Dispatch(metal.Size{X: rows, Y: s.Heads, Z: 1}, metal.Size{X: 32, Y: 1, Z: 1})
	return nil
}

// AttentionBackward encodes the gradients of Attention with the meaning of
// nn.AttentionBackward: dq (the segments' query rows) and dk, dv (rows KV to
// KV+Past+N of every segment, zero for padding keys) are set from dout, the
// forward's out and lse, and q, k, v; probabilities are recomputed, never
// stored. blocks holds AttentionBackwardBlocks(segs, s). Segments must not
// share key rows.
func (l *Library) AttentionBackward(e *metal.Encoder, dq, dk, dv, dout, out, lse, q, k, v, blocks Buf, segs []nn.Segment, s nn.AttnShape) error {
	const name = "attention backward"
	qRows, kvRows, err := attnRows(name, segs, s, true)
	if err != nil {
		return err
	}
	nq, nkv := qBlocks(segs), kvBlocks(segs, kvBlock(s.HeadDim))
	if nq == 0 && nkv == 0 {
		return nil
	}
	if lse.Buffer == nil {
		return fmt.Errorf("kernels: %s: lse is nil", name)
	}
	if err := needAttn(name, out, lse, q, k, v, qRows, kvRows, s); err != nil {
		return err
	}
	qb, kb := 4*qRows*s.Heads*s.HeadDim, 4*kvRows*s.KVHeads*s.HeadDim
	if err := needAll(name, []bufArg{{"dq", dq, qb}, {"dout", dout, qb}, {"dk", dk, kb}, {"dv", dv, kb}}); err != nil {
		return err
	}
	if err := needTable(name, blocks, qBlockLen*nq+kvBlockLen*nkv); err != nil {
		return err
	}
	args := attnParams(s, true)
	d := strconv.Itoa(s.HeadDim)
	if nq > 0 {
		e.SetPipeline(l.pipes["attn_bwd_dq_d"+d])
		bindAll(e, q, k, v, out, dout, lse, dq, blocks)
		e.SetBytes(8, args)
		e.Dispatch(metal.Size{X: nq, Y: s.Heads, Z: 1}, metal.Size{X: 128, Y: 1, Z: 1})
	}
	if nkv > 0 {
		e.SetPipeline(l.pipes["attn_bwd_dkv_d"+d])
		bindAll(e, q, k, v, out, dout, lse, dk, dv, Buf{Buffer: blocks.Buffer, Off: blocks.Off + 4*qBlockLen*nq})
		e.SetBytes(9, args)
		e.Dispatch(metal.Size{X: nkv, Y: s.KVHeads, Z: 1}, metal.Size{X: 4 * kvBlock(s.HeadDim), Y: 1, Z: 1})
	}
	return nil
}

// bindAll binds bufs to [[buffer(0)]], [[buffer(1)]], ...
func bindAll(e *metal.Encoder, bufs ...Buf) {
	for i, b := range bufs {
		bind(e, i, b)
	}
}

// needAttn checks the sizes of attention's operands; lse may be absent.
func needAttn(kernel string, out, lse, q, k, v Buf, qRows, kvRows int, s nn.AttnShape) error {
	qb, kb := 4*qRows*s.Heads*s.HeadDim, 4*kvRows*s.KVHeads*s.HeadDim
	if err := needAll(kernel, []bufArg{{"out", out, qb}, {"q", q, qb}, {"k", k, kb}, {"v", v, kb}}); err != nil {
		return err
	}
	if lse.Buffer != nil {
		return need(kernel, "lse", lse, 4*qRows*s.Heads)
	}
	return nil
}

// orBuf returns b, or alt when b has no buffer (a binding the kernel is
// told not to use).
func orBuf(b, alt Buf) Buf {
	if b.Buffer == nil {
		return alt
	}
	return b
}
