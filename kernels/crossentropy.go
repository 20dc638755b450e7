package kernels

import (
	"fmt"

	"github.com/goseal/ttt/metal"
)

// CrossEntropy encodes, for rows rows of cols float32 logits, the meaning
// of cpu.CrossEntropy: for a row r with labels[r] ≥ 0 (int32), losses[r] =
// −log softmax(logits[r])[labels[r]] and dlogits[r] =
// scale·(softmax(logits[r]) − onehot(labels[r])); a row with a negative
// label gets loss 0 and a zero gradient (as does one with a label ≥ cols,
// which the reference rejects). The row's log-sum-exp is accumulated in
// float32. dlogits may be logits itself (the same Buf), but must not
// overlap it otherwise.
func (l *Library) CrossEntropy(e *metal.Encoder, dlogits, losses, logits, labels Buf, rows, cols int, scale float32) error {
	if rows < 0 || cols < 0 || rows*cols >= 1<<32 {
		return fmt.Errorf("kernels: cross_entropy: bad shape rows=%d cols=%d", rows, cols)
	}
	if rows == 0 {
		return nil
	}
	if cols == 0 {
		return fmt.Errorf("kernels: cross_entropy: rows=%d of no logits", rows)
	}
	if err := needAll("cross_entropy", []bufArg{{"dlogits", dlogits, 4 * rows * cols}, {"losses", losses, 4 * rows}, {"logits", logits, 4 * rows * cols}, {"labels", labels, 4 * rows}}); err != nil {
		return err
	}
	vec := cols%4 == 0 && aligned(16, logits, dlogits)
	threads := l.threads("cross_entropy", min(1024, ((cols+3)/4+31)/32*32))
	e.SetPipeline(l.pipes["cross_entropy"])
	bind(e, 0, logits)
	bind(e, 1, labels)
	bind(e, 2, dlogits)
	bind(e, 3, losses)
	e.SetBytes(4, params(rows, cols, scale, vec))
	e.Dispatch(metal.Size{X: rows, Y: 1, Z: 1}, metal.Size{X: threads, Y: 1, Z: 1})
	return nil
}
