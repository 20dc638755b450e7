package kernels

import (
	"fmt"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/metal"
)

// MatMul encodes c = op(a)·op(b), or c += op(a)·op(b) when accumulate is
// set, with the meaning of nn.MatMul: c is m×n float32; op(a) is m×k
// float32 (a is stored k×m when transA); op(b) is k×n with elements of type
// bt (b is stored n×k when transB). All row-major. A linear layer y = x·Wᵀ
// with W stored [out, in] is MatMul(e, y, x, W, dt, rows, out, in, false,
// true, false). A single row (m == 1) uses a matrix-vector kernel.
func (l *Library) MatMul(e *metal.Encoder, c, a, b Buf, bt hf.DType, m, n, k int, transA, transB, accumulate bool) error {
	if m < 0 || n < 0 || k < 0 || m*n >= 1<<32 || m*k >= 1<<32 || n*k >= 1<<32 {
		return fmt.Errorf("kernels: matmul: bad shape m=%d n=%d k=%d", m, n, k)
	}
	suffix, ok := weightType(bt)
	if !ok {
		return fmt.Errorf("kernels: matmul: bad weight type %v", bt)
	}
	if m == 0 || n == 0 {
		return nil
	}
	if err := need("matmul", "c", c, 4*m*n); err != nil {
		return err
	}
	if err := need("matmul", "a", a, 4*m*k); err != nil {
		return err
	}
	if err := need("matmul", "b", b, bt.Size()*k*n); err != nil {
		return err
	}
	args := params(m, n, k, transA, transB, accumulate)
	var (
		name            string
		groups, threads metal.Size
	)
	switch {
	case m == 1 && transB:
		name = "matvec_t_" + suffix
		groups, threads = metal.Size{X: (n + 7) / 8, Y: 1, Z: 1}, metal.Size{X: 8 * 32, Y: 1, Z: 1}
	case m == 1:
		name = "matvec_n_" + suffix
		groups, threads = metal.Size{X: (n + 255) / 256, Y: 1, Z: 1}, metal.Size{X: 256, Y: 1, Z: 1}
	default:
		name = "matmul_" + suffix
		groups, threads = metal.Size{X: (n + 31) / 32, Y: (m + 31) / 32, Z: 1}, metal.Size{X: 128, Y: 1, Z: 1}
	}
	e.SetPipeline(l.pipes[name])
	bind(e, 0, a)
	bind(e, 1, b)
	bind(e, 2, c)
	e.SetBytes(3, args)
	e.Dispatch(groups, threads)
	return nil
}
