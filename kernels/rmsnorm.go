package kernels

import (
	"fmt"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/metal"
)

// RMSNorm encodes out[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) * weight
// for rows rows of cols float32 values, with the meaning of nn.RMSNorm;
// weight holds cols elements of type wt.
func (l *Library) RMSNorm(e *metal.Encoder, out, x, weight Buf, wt hf.DType, rows, cols int, eps float32) error {
	if rows < 0 || cols < 0 || rows*cols >= 1<<32 {
		return fmt.Errorf("kernels: rmsnorm: bad shape rows=%d cols=%d", rows, cols)
	}
	suffix, ok := weightType(wt)
	if !ok {
		return fmt.Errorf("kernels: rmsnorm: bad weight type %v", wt)
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	if err := need("rmsnorm", "out", out, 4*rows*cols); err != nil {
		return err
	}
	if err := need("rmsnorm", "x", x, 4*rows*cols); err != nil {
		return err
	}
	if err := need("rmsnorm", "weight", weight, wt.Size()*cols); err != nil {
		return err
	}
	// A multiple of 32 threads, up to 256, and no more than the row needs.
	threads := min(256, (cols+31)/32*32)
	e.SetPipeline(l.pipes["rmsnorm_"+suffix])
	bind(e, 0, x)
	bind(e, 1, weight)
	bind(e, 2, out)
	e.SetBytes(3, params(rows, cols, eps))
	e.Dispatch(metal.Size{X: rows, Y: 1, Z: 1}, metal.Size{X: threads, Y: 1, Z: 1})
	return nil
}

// RMSNormBackward encodes dx, the gradient of RMSNorm's input for output
// gradient dy, with the meaning of cpu.RMSNormBackward: x, dy and dx are
// rows×cols float32, weight holds cols elements of type wt. dx may be dy
// or x (the same Buf).
func (l *Library) RMSNormBackward(e *metal.Encoder, dx, dy, x, weight Buf, wt hf.DType, rows, cols int, eps float32) error {
	if rows < 0 || cols < 0 || rows*cols >= 1<<32 {
		return fmt.Errorf("kernels: rmsnorm_backward: bad shape rows=%d cols=%d", rows, cols)
	}
	suffix, ok := weightType(wt)
	if !ok {
		return fmt.Errorf("kernels: rmsnorm_backward: bad weight type %v", wt)
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	if err := needAll("rmsnorm_backward", []bufArg{{"dx", dx, 4 * rows * cols}, {"dy", dy, 4 * rows * cols}, {"x", x, 4 * rows * cols}}); err != nil {
		return err
	}
	if err := need("rmsnorm_backward", "weight", weight, wt.Size()*cols); err != nil {
		return err
	}
	threads := min(256, (cols+31)/32*32)
	e.SetPipeline(l.pipes["rmsnorm_backward_"+suffix])
	bind(e, 0, x)
	bind(e, 1, weight)
	bind(e, 2, dy)
	bind(e, 3, dx)
	e.SetBytes(4, params(rows, cols, eps))
	e.Dispatch(metal.Size{X: rows, Y: 1, Z: 1}, metal.Size{X: threads, Y: 1, Z: 1})
	return nil
}
