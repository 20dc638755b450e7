package nn

import "github.com/goseal/ttt/hf"

// LoRA is a low-rank adapter on one linear layer, as PEFT defines it:
// y = W·x + b + Scale·B·A·dropout(x), with A rank×in and B out×rank.
// GradA and GradB accumulate gradients during training.
type LoRA struct {
	A, B         *Tensor
	GradA, GradB *Tensor
	Scale        float32 // alpha / rank
	Dropout      float32 // probability, training only
}

// Adapter holds the LoRA of every adapted (block, module); nil entries are
// plain linear layers. A nil *Adapter is the base model.
type Adapter struct {
	Blocks [][hf.NumModules]*LoRA
}

// get returns the LoRA on (block l, module mod), or nil.
func (a *Adapter) get(l int, mod hf.Module) *LoRA {
	if a == nil || l >= len(a.Blocks) {
		return nil
	}
	return a.Blocks[l][mod]
}
