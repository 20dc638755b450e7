package kernels

import (
	"fmt"

	"github.com/goseal/ttt/metal"
)

// RoPE encodes the rotary embedding of x in place, with the meaning of
// cpu.RoPE: x is rows×cols float32, cols a multiple of the even headDim;
// table is positions×headDim float32 (nn.RopeTable: cosines, then sines);
// pos holds rows int32 positions. inverse rotates the other way (the
// gradient). The positions are not checked on the host (they are device
// data): a row whose position is outside [0, positions) is left unrotated
// and nothing outside the table is read.
func (l *Library) RoPE(e *metal.Encoder, x, table, pos Buf, rows, cols, headDim, positions int, inverse bool) error {
	if rows < 0 || cols < 0 || positions < 0 || headDim <= 0 || headDim%2 != 0 || cols%headDim != 0 ||
		rows*cols >= 1<<32 || positions*headDim >= 1<<32 {
		return fmt.Errorf("kernels: rope: bad shape rows=%d cols=%d headDim=%d positions=%d", rows, cols, headDim, positions)
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	if err := need("rope", "x", x, 4*rows*cols); err != nil {
		return err
	}
	if err := need("rope", "table", table, 4*positions*headDim); err != nil {
		return err
	}
	if err := need("rope", "pos", pos, 4*rows); err != nil {
		return err
	}
	vec := headDim%8 == 0 && aligned(16, x, table)
	pairs := cols / 2
	if vec {
		pairs = cols / 8
	}
	e.SetPipeline(l.pipes["rope"])
	bind(e, 0, x)
	bind(e, 1, table)
	bind(e, 2, pos)
	e.SetBytes(3, params(rows, cols, headDim, positions, inverse, vec))
	dispatchRows(e, pairs, rows, false)
	return nil
}
