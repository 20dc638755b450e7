package kernels

import (
	"fmt"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// AdamW encodes one AdamW step over n float32 parameters with the meaning
// of cpu.AdamW(param, grad, m, v, h, nn.ClipFactor(gradSumSq[0],
// h.MaxGradNorm)): the clipping factor is computed on the device from
// gradSumSq, one float32 holding the sum of squares of every gradient (as
// SumSquares writes it), and the step's scalars on the host by
// cpu.AdamWScalars. param, m and v are updated in place.
func (l *Library) AdamW(e *metal.Encoder, param, grad, m, v, gradSumSq Buf, n int, h nn.AdamWParams) error {
	if err := flatShape("adamw", n); err != nil {
		return err
	}
	if h.Step < 1 || !(h.MaxGradNorm > 0) {
		return fmt.Errorf("kernels: adamw: step %d must be at least 1 and max grad norm %g positive", h.Step, h.MaxGradNorm)
	}
	if n == 0 {
		return nil
	}
	if err := needAll("adamw", []bufArg{{"param", param, 4 * n}, {"grad", grad, 4 * n}, {"m", m, 4 * n}, {"v", v, 4 * n}, {"gradSumSq", gradSumSq, 4}}); err != nil {
		return err
	}
	decay, b1, b2, bc2sqrt, stepSize, eps := cpu.AdamWScalars(h)
	e.SetPipeline(l.pipes["adamw"])
	bind(e, 0, param)
	bind(e, 1, grad)
	bind(e, 2, m)
	bind(e, 3, v)
	bind(e, 4, gradSumSq)
	e.SetBytes(5, params(n, decay, b1, b2, bc2sqrt, stepSize, eps, float32(h.MaxGradNorm)))
	dispatchFlat(e, n, false)
	return nil
}
