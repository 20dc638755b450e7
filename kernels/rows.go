package kernels

import (
	"fmt"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/metal"
)

// Embed encodes out[r,:] = table[ids[r],:] for rows rows of cols values,
// with the meaning of cpu.Embed: table is tableRows×cols of type tt, widened
// to float32 in out; ids holds rows int32 values. The ids are not checked
// on the host (they are device data): a row whose id is outside
// [0, tableRows) is written as zeros and nothing outside the table is read.
func (l *Library) Embed(e *metal.Encoder, out, table Buf, tt hf.DType, ids Buf, rows, cols, tableRows int) error {
	if rows < 0 || cols < 0 || tableRows < 0 || rows*cols >= 1<<32 || tableRows*cols >= 1<<32 {
		return fmt.Errorf("kernels: embed: bad shape rows=%d cols=%d tableRows=%d", rows, cols, tableRows)
	}
	suffix, ok := weightType(tt)
	if !ok {
		return fmt.Errorf("kernels: embed: bad table type %v", tt)
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	if err := need("embed", "out", out, 4*rows*cols); err != nil {
		return err
	}
	if err := need("embed", "table", table, tt.Size()*tableRows*cols); err != nil {
		return err
	}
	if err := need("embed", "ids", ids, 4*rows); err != nil {
		return err
	}
	vec := cols%4 == 0 && aligned(16, out) && aligned(4*tt.Size(), table)
	e.SetPipeline(l.pipes["embed_"+suffix])
	bind(e, 0, table)
	bind(e, 1, ids)
	bind(e, 2, out)
	e.SetBytes(3, params(rows, cols, tableRows, vec))
	dispatchRows(e, cols, rows, vec)
	return nil
}

// SetRows encodes dst[rows[r],:] = src[r,:] for n rows of cols float32
// values: dst is dstRows×cols, rows holds n distinct int32 row numbers (the
// CPU backend's SetRows; a KV-cache write). A row number outside
// [0, dstRows) is skipped: that source row is not written anywhere.
func (l *Library) SetRows(e *metal.Encoder, dst, src, rows Buf, n, cols, dstRows int) error {
	if n < 0 || cols < 0 || dstRows < 0 || n*cols >= 1<<32 || dstRows*cols >= 1<<32 {
		return fmt.Errorf("kernels: set_rows: bad shape n=%d cols=%d dstRows=%d", n, cols, dstRows)
	}
	if n == 0 || cols == 0 {
		return nil
	}
	if err := need("set_rows", "dst", dst, 4*dstRows*cols); err != nil {
		return err
	}
	if err := need("set_rows", "src", src, 4*n*cols); err != nil {
		return err
	}
	if err := need("set_rows", "rows", rows, 4*n); err != nil {
		return err
	}
	vec := cols%4 == 0 && aligned(16, dst, src)
	e.SetPipeline(l.pipes["set_rows"])
	bind(e, 0, src)
	bind(e, 1, rows)
	bind(e, 2, dst)
	e.SetBytes(3, params(n, cols, dstRows, vec))
	dispatchRows(e, cols, n, vec)
	return nil
}
