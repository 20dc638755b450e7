package kernels

import (
	"fmt"
	"math"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// An output of the elementwise kernels may be one of their inputs, as the
// same Buf; tensors that overlap otherwise are not allowed.

// Add encodes out = a + b over n float32 elements.
func (l *Library) Add(e *metal.Encoder, out, a, b Buf, n int) error {
	if err := flatShape("add", n); err != nil || n == 0 {
		return err
	}
	if err := needAll("add", []bufArg{{"out", out, 4 * n}, {"a", a, 4 * n}, {"b", b, 4 * n}}); err != nil {
		return err
	}
	vec := aligned(16, out, a, b)
	e.SetPipeline(l.pipes["add"])
	bind(e, 0, a)
	bind(e, 1, b)
	bind(e, 2, out)
	e.SetBytes(3, params(n, vec))
	dispatchFlat(e, n, vec)
	return nil
}

// Copy encodes dst = src over n 32-bit elements (float32 or int32), as bits:
// no float arithmetic touches them, so integers that read as subnormal or
// NaN floats arrive unchanged.
func (l *Library) Copy(e *metal.Encoder, dst, src Buf, n int) error {
	if err := flatShape("copy", n); err != nil || n == 0 {
		return err
	}
	if err := need("copy", "dst", dst, 4*n); err != nil {
		return err
	}
	if err := need("copy", "src", src, 4*n); err != nil {
		return err
	}
	vec := aligned(16, dst, src)
	e.SetPipeline(l.pipes["copy_u32"])
	bind(e, 0, src)
	bind(e, 1, dst)
	e.SetBytes(2, params(n, vec))
	dispatchFlat(e, n, vec)
	return nil
}

// Fill encodes x[i] = v for n float32 elements.
func (l *Library) Fill(e *metal.Encoder, x Buf, n int, v float32) error {
	if err := flatShape("fill", n); err != nil || n == 0 {
		return err
	}
	if err := need("fill", "x", x, 4*n); err != nil {
		return err
	}
	vec := aligned(16, x)
	e.SetPipeline(l.pipes["fill_f32"])
	bind(e, 0, x)
	e.SetBytes(1, params(n, vec, v))
	dispatchFlat(e, n, vec)
	return nil
}

// AddBias encodes x[r,:] += bias for rows rows of cols float32 values, as
// the CPU backend's AddBias; bias holds cols elements of type bt.
func (l *Library) AddBias(e *metal.Encoder, x, bias Buf, bt hf.DType, rows, cols int) error {
	if rows < 0 || cols < 0 || rows*cols >= 1<<32 {
		return fmt.Errorf("kernels: add_bias: bad shape rows=%d cols=%d", rows, cols)
	}
	suffix, ok := weightType(bt)
	if !ok {
		return fmt.Errorf("kernels: add_bias: bad bias type %v", bt)
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	if err := need("add_bias", "x", x, 4*rows*cols); err != nil {
		return err
	}
	if err := need("add_bias", "bias", bias, bt.Size()*cols); err != nil {
		return err
	}
	vec := cols%4 == 0 && aligned(16, x) && aligned(4*bt.Size(), bias)
	e.SetPipeline(l.pipes["add_bias_"+suffix])
	bind(e, 0, x)
	bind(e, 1, bias)
	e.SetBytes(2, params(rows, cols, vec))
	dispatchRows(e, cols, rows, vec)
	return nil
}

// SiLUMul encodes out = silu(gate)·up over n float32 elements, with the
// meaning of cpu.SiLUMul.
func (l *Library) SiLUMul(e *metal.Encoder, out, gate, up Buf, n int) error {
	if err := flatShape("silu_mul", n); err != nil || n == 0 {
		return err
	}
	if err := needAll("silu_mul", []bufArg{{"out", out, 4 * n}, {"gate", gate, 4 * n}, {"up", up, 4 * n}}); err != nil {
		return err
	}
	vec := aligned(16, out, gate, up)
	e.SetPipeline(l.pipes["silu_mul"])
	bind(e, 0, gate)
	bind(e, 1, up)
	bind(e, 2, out)
	e.SetBytes(3, params(n, vec))
	dispatchFlat(e, n, vec)
	return nil
}

// SiLUMulBackward encodes the gradients of SiLUMul for output gradient dout
// over n float32 elements, with the meaning of cpu.SiLUMulBackward.
func (l *Library) SiLUMulBackward(e *metal.Encoder, dgate, dup, dout, gate, up Buf, n int) error {
	if err := flatShape("silu_mul_backward", n); err != nil || n == 0 {
		return err
	}
	if err := needAll("silu_mul_backward", []bufArg{{"dgate", dgate, 4 * n}, {"dup", dup, 4 * n}, {"dout", dout, 4 * n}, {"gate", gate, 4 * n}, {"up", up, 4 * n}}); err != nil {
		return err
	}
	vec := aligned(16, dgate, dup, dout, gate, up)
	e.SetPipeline(l.pipes["silu_mul_backward"])
	bind(e, 0, dout)
	bind(e, 1, gate)
	bind(e, 2, up)
	bind(e, 3, dgate)
	bind(e, 4, dup)
	e.SetBytes(5, params(n, vec))
	dispatchFlat(e, n, vec)
	return nil
}

// Dropout encodes out = x·mask over n float32 elements, with the meaning of
// cpu.Dropout(out, x, p, nn.DropoutKey(seed)): element i is zeroed when
// nn.DropoutUniform(key, i) < p and multiplied by nn.DropoutScale(p)
// otherwise, bit for bit. p is in [0, 1].
func (l *Library) Dropout(e *metal.Encoder, out, x Buf, n int, p float32, seed uint64) error {
	if err := flatShape("dropout", n); err != nil || n == 0 {
		return err
	}
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("kernels: dropout: p=%v is not in [0, 1]", p)
	}
	if err := need("dropout", "out", out, 4*n); err != nil {
		return err
	}
	if err := need("dropout", "x", x, 4*n); err != nil {
		return err
	}
	// DropoutUniform is k·2⁻²⁴ for a 24-bit integer k, and k·2⁻²⁴ < p
	// exactly when k < ⌈p·2²⁴⌉ (p·2²⁴ is exact in float64).
	threshold := int(math.Ceil(float64(p) * (1 << 24)))
	vec := aligned(16, out, x)
	e.SetPipeline(l.pipes["dropout"])
	bind(e, 0, x)
	bind(e, 1, out)
	e.SetBytes(2, params(n, vec, int(nn.DropoutKey(seed)), threshold, nn.DropoutScale(p)))
	dispatchFlat(e, n, vec)
	return nil
}

// flatShape checks the size of a flat kernel's tensors, whose element
// indices are 32-bit.
func flatShape(kernel string, n int) error {
	if n < 0 || n >= 1<<32 {
		return fmt.Errorf("kernels: %s: bad size n=%d", kernel, n)
	}
	return nil
}

// aligned reports whether every buffer's data at its offset is aligned to n
// bytes (a power of two up to 16). A GPU buffer starts page-aligned; the
// emulator places a buffer's end against a guard page and starts it
// aligned only to the largest power of two up to 16 dividing its length,
// so a buffer whose length n does not divide counts as unaligned.
func aligned(n int, bufs ...Buf) bool {
	for _, b := range bufs {
		if b.Off%n != 0 || b.Buffer.Len()%n != 0 {
			return false
		}
	}
	return true
}

// groupThreads is the threadgroup width of the elementwise kernels.
const groupThreads = 256

// dispatchFlat dispatches a flat kernel over n elements: a thread per
// element, or per four when vec.
func dispatchFlat(e *metal.Encoder, n int, vec bool) {
	threads := n
	if vec {
		threads = (n + 3) / 4
	}
	e.Dispatch(metal.Size{X: (threads + groupThreads - 1) / groupThreads, Y: 1, Z: 1}, metal.Size{X: groupThreads, Y: 1, Z: 1})
}

// dispatchRows dispatches a grid of cols threads (cols/4 when vec) by rows:
// threadgroups of up to 256 threads along a row, one row high.
func dispatchRows(e *metal.Encoder, cols, rows int, vec bool) {
	x := cols
	if vec {
		x = cols / 4
	}
	w := min(groupThreads, (x+31)/32*32)
	e.Dispatch(metal.Size{X: (x + w - 1) / w, Y: rows, Z: 1}, metal.Size{X: w, Y: 1, Z: 1})
}
