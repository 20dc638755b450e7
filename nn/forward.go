package nn

import (
	"fmt"

	"github.com/goseal/ttt/hf"
)

// Batch is a set of token rows run through the model together: row r holds
// token IDs[r] at position Pos[r]; Segs group the rows into sequences for
// attention.
type Batch struct {
	IDs  []int32
	Pos  []int32
	Segs []Segment
}

// Validate checks the batch against the model before any op runs.
func (m *Model) validate(b *Batch, keyRows int) error {
	if len(b.IDs) != len(b.Pos) {
		return fmt.Errorf("batch has %d ids but %d positions", len(b.IDs), len(b.Pos))
	}
	for r, id := range b.IDs {
		if id < 0 || int(id) >= m.Config.VocabSize {
			return fmt.Errorf("token id %d at row %d is outside the vocabulary (%d)", id, r, m.Config.VocabSize)
		}
		if b.Pos[r] < 0 {
			return fmt.Errorf("negative position at row %d", r)
		}
	}
	for _, s := range b.Segs {
		if s.Q < 0 || s.N < 0 || s.Q+s.N > len(b.IDs) || s.KV < 0 || s.Past < 0 || s.KV+s.Past+s.N > keyRows {
			return fmt.Errorf("segment %+v does not fit %d rows and %d key rows", s, len(b.IDs), keyRows)
		}
	}
	return nil
}

// KVCache holds keys and values for generation: per block, one row per
// cached token of every sequence (sequence s owns rows [s·Cap, (s+1)·Cap)).
type KVCache struct {
	K, V []*Tensor
	Cap  int
}

// Free gives the cache's tensors back to the backend.
func (c *KVCache) Free(b Backend) {
	for l := range c.K {
		b.Free(c.K[l])
		b.Free(c.V[l])
	}
}

// NewKVCache makes a cache for seqs sequences of up to capacity tokens each.
func (m *Model) NewKVCache(seqs, capacity int) *KVCache {
	c := &KVCache{Cap: capacity}
	cols := m.Config.KVHeads * m.Config.HeadDim
	for range m.Blocks {
		c.K = append(c.K, m.B.NewTensor(hf.F32, seqs*capacity, cols))
		c.V = append(c.V, m.B.NewTensor(hf.F32, seqs*capacity, cols))
	}
	return c
}

func maxPos(pos []int32) int32 {
	var m int32
	for _, p := range pos {
		m = max(m, p)
	}
	return m
}

// upload puts the batch's ids and positions on the device and sets p to the
// pass over its rows (no cache).
func (m *Model) upload(p *pass, ws *workspace, b *Batch) {
	*p = pass{
		ids:  ws.upload("ids", b.IDs),
		pos:  ws.upload("pos", b.Pos),
		segs: b.Segs,
		rope: m.ropeTable(int(maxPos(b.Pos)) + 1),
	}
}

// Logits runs the batch through the model (no cache, no adapter when ad is
// nil) and returns the logits of every row (rows × vocab, row-major),
// downloaded into dst when it has room (a new slice otherwise). It is the
// plain full-sequence forward pass; generation uses a KV cache instead.
func (m *Model) Logits(b *Batch, ad *Adapter, dst []float32) ([]float32, error) {
	if err := m.validate(b, len(b.IDs)); err != nil {
		return nil, err
	}
	ws := newWorkspace(m.B)
	defer ws.free()
	p := &pass{}
	m.upload(p, ws, b)
	x := ws.get("x", len(b.IDs), m.Config.Hidden)
	m.B.Embed(x, m.Embed, p.ids)
	for l := range m.Blocks {
		m.blockForward(ws, l, x, p, ad, nil)
	}
	m.B.RMSNorm(x, x, m.Norm, m.Config.RMSNormEps)
	logits := ws.get("logits", len(b.IDs), m.Config.VocabSize)
	m.B.MatMul(logits, x, m.LMHead, false, true, 1, false)
	if cap(dst) < logits.Len() {
		dst = make([]float32, logits.Len())
	}
	dst = dst[:logits.Len()]
	return dst, m.B.Download(dst, logits)
}
