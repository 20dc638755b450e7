package check

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// rowsCases covers Embed and SetRows. Both copy values (Embed widening
// them exactly), so every case must match exactly: tolerance zero. Some
// cases carry row numbers outside the table, which the kernels must
// neither follow nor let fault: Embed writes a zero row, SetRows skips it.
func rowsCases() []Case {
	var cs []Case
	embeds := map[hf.DType][]struct {
		rows, cols, tableRows, off int
		bad                        bool
	}{
		hf.F32:  {{1, 1, 1, 0, false}, {5, 7, 300, 4, true}, {3, 896, 300, 0, false}, {2, 3584, 40, 16, false}},
		hf.F16:  {{4, 3, 50, 0, false}, {3, 896, 300, 4, false}, {6, 128, 300, 16, true}},
		hf.BF16: {{1, 896, 300, 0, false}, {7, 5, 300, 0, true}, {3, 3584, 40, 8, false}},
	}
	for _, dt := range []hf.DType{hf.F32, hf.F16, hf.BF16} {
		for _, s := range embeds[dt] {
			cs = append(cs, embedCase(dt, s.rows, s.cols, s.tableRows, s.off, s.bad))
		}
	}
	for _, s := range []struct {
		n, cols, dstRows, off int
		bad                   bool
	}{
		{1, 1, 1, 0, false}, {1, 128, 37, 0, false}, {5, 7, 37, 4, true}, {3, 896, 10, 16, false},
		{9, 128, 64, 4, true}, {2, 3584, 5, 0, false},
	} {
		cs = append(cs, setRowsCase(s.n, s.cols, s.dstRows, s.off, s.bad))
	}
	return cs
}

// rowNumbers returns n distinct row numbers in [0, limit), the first
// limit−1 (the last row: the end of the buffer), in random order. With bad,
// two of them (when n ≥ 3) are replaced by limit and −1.
func rowNumbers(n, limit int, seed uint64, bad bool) []int32 {
	r := rand.New(rand.NewPCG(seed, 7))
	perm := r.Perm(limit)
	ids := []int32{int32(limit - 1)}
	for _, v := range perm {
		if len(ids) == n {
			break
		}
		if v != limit-1 {
			ids = append(ids, int32(v))
		}
	}
	if bad && n >= 3 {
		ids[1], ids[n-1] = int32(limit), -1
	}
	return ids
}

func embedCase(dt hf.DType, rows, cols, tableRows, off int, bad bool) Case {
	seed := uint64(rows*7919 + cols*31 + tableRows + off)
	shape := fmt.Sprintf("rows=%d cols=%d table=%d off=%d", rows, cols, tableRows, off)
	if bad {
		shape += " bad ids"
	}
	return Case{
		File:   "rows.metal",
		Kernel: "embed " + dt.String(),
		Shape:  shape,
		Tol:    0,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			tb, table := weights(random(tableRows*cols, seed), dt)
			ids := rowNumbers(rows, tableRows, seed, bad)
			out := random(rows*cols, seed+1)
			outs, t, err := launch(dev, [][]byte{pad(f32bytes(out), off), pad(tb, off), pad(i32bytes(ids), off)}, func(e *metal.Encoder, b []*metal.Buffer) error {
				return lib.Embed(e, at(b[0], off), at(b[1], off), dt, at(b[2], off), rows, cols, tableRows)
			})
			if err != nil {
				return nil, nil, t, err
			}
			// cpu.Embed row by row; an id outside the table gives zeros.
			for r, id := range ids {
				row := out[r*cols : (r+1)*cols]
				if id < 0 || int(id) >= tableRows {
					clear(row)
					continue
				}
				cpu.Embed(row, table, ids[r:r+1], cols)
			}
			return f32s(outs[0]), f32s(pad(f32bytes(out), off)), t, nil
		},
	}
}

func setRowsCase(n, cols, dstRows, off int, bad bool) Case {
	seed := uint64(n*7919 + cols*31 + dstRows + off)
	shape := fmt.Sprintf("n=%d cols=%d dst=%d off=%d", n, cols, dstRows, off)
	if bad {
		shape += " bad rows"
	}
	return Case{
		File:   "rows.metal",
		Kernel: "set_rows",
		Shape:  shape,
		Tol:    0,
		run: func(dev *metal.Device, lib *kernels.Library) ([]float32, []float32, time.Duration, error) {
			dst := random(dstRows*cols, seed)
			src := random(n*cols, seed+1)
			rows := rowNumbers(n, dstRows, seed, bad)
			outs, t, err := launch(dev, [][]byte{pad(f32bytes(dst), off), pad(f32bytes(src), off), pad(i32bytes(rows), off)}, func(e *metal.Encoder, b []*metal.Buffer) error {
				return lib.SetRows(e, at(b[0], off), at(b[1], off), at(b[2], off), n, cols, dstRows)
			})
			if err != nil {
				return nil, nil, t, err
			}
			// The CPU backend's SetRows; a row number outside dst is skipped.
			for r, d := range rows {
				if d >= 0 && int(d) < dstRows {
					copy(dst[int(d)*cols:(int(d)+1)*cols], src[r*cols:(r+1)*cols])
				}
			}
			return f32s(outs[0]), f32s(pad(f32bytes(dst), off)), t, nil
		},
	}
}
