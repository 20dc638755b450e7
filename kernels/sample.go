package kernels

import (
	"fmt"

	"github.com/goseal/ttt/metal"
)

// Sample encodes, for each of rows rows of cols float32 logits, ids[r] =
// cpu.Sample(logits[r], u[r], temperature, topP) as int32: the row's
// argmax (first on ties) when temperature is 0, otherwise a draw from the
// threshold top-p candidates with the uniform value u[r] in [0, 1). The
// weights are summed in float32 in a different order than the reference's,
// so a draw whose target falls within rounding of a boundary between two
// tokens (or whose candidate mass is within rounding of topP·W) may pick
// the neighbouring token.
// Greedy decoding (temperature 0) reads no draws: u may then be empty.
func (l *Library) Sample(e *metal.Encoder, ids, logits, u Buf, rows, cols int, temperature, topP float32) error {
	if rows < 0 || cols < 0 || rows*cols >= 1<<32 {
		return fmt.Errorf("kernels: sample: bad shape rows=%d cols=%d", rows, cols)
	}
	if !(temperature >= 0) {
		return fmt.Errorf("kernels: sample: temperature %g is negative", temperature)
	}
	if rows == 0 {
		return nil
	}
	if cols == 0 {
		return fmt.Errorf("kernels: sample: rows=%d of no logits", rows)
	}
	args := []bufArg{{"ids", ids, 4 * rows}, {"logits", logits, 4 * rows * cols}, {"u", u, 4 * rows}}
	if temperature == 0 && u.Buffer == nil {
		args = args[:2] // greedy reads no draws
	}
	if err := needAll("sample", args); err != nil {
		return err
	}
	threads := l.threads("sample", min(1024, (cols+31)/32*32))
	e.SetPipeline(l.pipes["sample"])
	bind(e, 0, logits)
	bind(e, 1, orBuf(u, ids))
	bind(e, 2, ids)
	e.SetBytes(3, params(rows, cols, temperature, topP))
	e.Dispatch(metal.Size{X: rows, Y: 1, Z: 1}, metal.Size{X: threads, Y: 1, Z: 1})
	return nil
}
