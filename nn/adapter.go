package nn

import "github.com/goseal/ttt/hf"

// LoRA is a low-rank adapter on one linear layer, as PEFT defines it:
// y = W·x + b + Scale·B·A·dropout(x), with A rank×in and B out×rank.
// GradA and GradB accumulate gradients during training. All four are views
// of their adapter's Params and Grads.
type LoRA struct {
	A, B         *Tensor
	GradA, GradB *Tensor
	Scale        float32 // alpha / rank
	Dropout      float32 // probability, training only
}

// Adapter holds the LoRA of every adapted (block, module); nil entries are
// plain linear layers. A nil *Adapter is the base model. Params holds every
// LoRA's A then B, in block then module order, as one flat F32 tensor, and
// Grads their gradients in the same layout, so an optimizer step or a
// gradient norm is one op over all of them.
type Adapter struct {
	Blocks        [][hf.NumModules]*LoRA
	Params, Grads *Tensor
}

// NewAdapter allocates, on b, an adapter of the given rank on every module
// of every block for which on(block, module) is true, its parameters and
// gradients zero.
func NewAdapter(b Backend, cfg *hf.Config, rank int, scale, dropout float32, on func(l int, mod hf.Module) bool) *Adapter {
	ad := &Adapter{Blocks: make([][hf.NumModules]*LoRA, cfg.Layers)}
	n := 0
	for l := range ad.Blocks {
		for mod := hf.Module(0); mod < hf.NumModules; mod++ {
			if on(l, mod) {
				out, in := cfg.LinearShape(mod)
				n += rank * (in + out)
			}
		}
	}
	ad.Params = b.NewTensor(hf.F32, n, 1)
	ad.Grads = b.NewTensor(hf.F32, n, 1)
	off := 0
	for l := range ad.Blocks {
		for mod := hf.Module(0); mod < hf.NumModules; mod++ {
			if !on(l, mod) {
				continue
			}
			out, in := cfg.LinearShape(mod)
			lo := &LoRA{Scale: scale, Dropout: dropout}
			lo.A, lo.GradA = ad.Params.View(off, rank, in), ad.Grads.View(off, rank, in)
			off += rank * in
			lo.B, lo.GradB = ad.Params.View(off, out, rank), ad.Grads.View(off, out, rank)
			off += out * rank
			ad.Blocks[l][mod] = lo
		}
	}
	return ad
}

// Free gives the adapter's parameters and gradients back to b; the adapter
// must not be used after.
func (a *Adapter) Free(b Backend) {
	b.Free(a.Params)
	b.Free(a.Grads)
}

// Offset returns where view t (an A or B of the adapter) starts within
// Params, in elements.
func (a *Adapter) Offset(t *Tensor) int { return t.Off - a.Params.Off }

// get returns the LoRA on (block l, module mod), or nil.
func (a *Adapter) get(l int, mod hf.Module) *LoRA {
	if a == nil || l >= len(a.Blocks) {
		return nil
	}
	return a.Blocks[l][mod]
}
