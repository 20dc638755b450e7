package kernels_test

import (
	"strings"
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// TestLaunchErrors checks that the launchers reject bad arguments with an
// error before anything is encoded, and that no command buffer is left
// pending when the caller waits for each.
func TestLaunchErrors(t *testing.T) {
	d, l := library(t)
	small, err := d.NewBuffer(16)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Release()
	big, err := d.NewBuffer(16384)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Release()
	tests := []struct {
		name   string
		launch func(e *metal.Encoder) error
		want   string
	}{
		{"matmul negative size", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), hf.F32, -1, 2, 2, false, false, 1, false, kernels.Buf{})
		}, "bad shape m=-1"},
		{"matmul small c", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(small), kernels.Whole(big), kernels.Whole(big), hf.F32, 4, 4, 4, false, false, 1, false, kernels.Buf{})
		}, "c holds 16 bytes, needs 64"},
		{"matmul small bf16 weights", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(small), hf.BF16, 4, 4, 4, false, true, 1, false, kernels.Buf{})
		}, "b holds 16 bytes, needs 32"},
		{"matmul nil a", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(big), kernels.Buf{}, kernels.Whole(big), hf.F32, 4, 4, 4, false, false, 1, false, kernels.Buf{})
		}, "a is nil"},
		{"matmul bad dtype", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), hf.DType(7), 4, 4, 4, false, false, 1, false, kernels.Buf{})
		}, "bad weight type DType(7)"},
		{"matmul split-K without scratch", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), hf.F32, 2, 2, 1024, true, false, 1, false, kernels.Buf{})
		}, "scratch is nil"},
		{"rmsnorm small x", func(e *metal.Encoder) error {
			return l.RMSNorm(e, kernels.Whole(big), kernels.Whole(small), kernels.Whole(big), hf.F16, 2, 8, 1e-6)
		}, "x holds 16 bytes, needs 64"},
		{"rmsnorm negative rows", func(e *metal.Encoder) error {
			return l.RMSNorm(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), hf.F32, -2, 8, 1e-6)
		}, "bad shape rows=-2"},
		{"add small b", func(e *metal.Encoder) error {
			return l.Add(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(small), 8)
		}, "add: b holds 16 bytes, needs 32"},
		{"copy misaligned dst", func(e *metal.Encoder) error {
			return l.Copy(e, kernels.Buf{Buffer: big, Off: 2}, kernels.Whole(big), 8)
		}, "copy: dst offset 2 is not a multiple of 4"},
		{"fill negative size", func(e *metal.Encoder) error {
			return l.Fill(e, kernels.Whole(big), -1, 0)
		}, "fill: bad size n=-1"},
		{"add_bias small f16 bias", func(e *metal.Encoder) error {
			return l.AddBias(e, kernels.Whole(big), kernels.Whole(small), hf.F16, 2, 16)
		}, "add_bias: bias holds 16 bytes, needs 32"},
		{"add_bias bad dtype", func(e *metal.Encoder) error {
			return l.AddBias(e, kernels.Whole(big), kernels.Whole(big), hf.I32, 2, 16)
		}, "add_bias: bad bias type"},
		{"silu_mul_backward small dup", func(e *metal.Encoder) error {
			return l.SiLUMulBackward(e, kernels.Whole(big), kernels.Buf{Buffer: big, Off: 16368}, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), 8)
		}, "silu_mul_backward: dup holds 16 bytes after offset 16368, needs 32"},
		{"dropout p above 1", func(e *metal.Encoder) error {
			return l.Dropout(e, kernels.Whole(big), kernels.Whole(big), 8, 1.5, 1)
		}, "dropout: p=1.5 is not in [0, 1]"},
		{"embed small table", func(e *metal.Encoder) error {
			return l.Embed(e, kernels.Whole(big), kernels.Whole(small), hf.BF16, kernels.Whole(big), 2, 8, 3)
		}, "embed: table holds 16 bytes, needs 48"},
		{"set_rows small row numbers", func(e *metal.Encoder) error {
			return l.SetRows(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(small), 5, 8, 10)
		}, "set_rows: rows holds 16 bytes, needs 20"},
		{"rope odd head", func(e *metal.Encoder) error {
			return l.RoPE(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), 2, 12, 3, 4, false)
		}, "rope: bad shape rows=2 cols=12 headDim=3"},
		{"rope cols not whole heads", func(e *metal.Encoder) error {
			return l.RoPE(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), 2, 12, 8, 4, false)
		}, "rope: bad shape rows=2 cols=12 headDim=8"},
		{"rmsnorm_backward small dy", func(e *metal.Encoder) error {
			return l.RMSNormBackward(e, kernels.Whole(big), kernels.Whole(small), kernels.Whole(big), kernels.Whole(big), hf.F32, 2, 8, 1e-6)
		}, "rmsnorm_backward: dy holds 16 bytes, needs 64"},
		{"cross_entropy small losses", func(e *metal.Encoder) error {
			return l.CrossEntropy(e, kernels.Whole(big), kernels.Whole(small), kernels.Whole(big), kernels.Whole(big), 8, 16, 1)
		}, "cross_entropy: losses holds 16 bytes, needs 32"},
		{"cross_entropy unaligned labels", func(e *metal.Encoder) error {
			return l.CrossEntropy(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), kernels.Buf{Buffer: big, Off: 2}, 8, 16, 1)
		}, "labels offset 2 is not a multiple of 4"},
		{"sum small scratch", func(e *metal.Encoder) error {
			return l.Sum(e, kernels.Whole(big), kernels.Whole(big), kernels.Buf{Buffer: small, Off: 16}, 8, false)
		}, "reduce_sum: scratch holds 0 bytes after offset 16, needs 4"},
		{"sumsquares small x", func(e *metal.Encoder) error {
			return l.SumSquares(e, kernels.Whole(big), kernels.Whole(small), kernels.Whole(big), 5)
		}, "reduce_sum_squares: x holds 16 bytes, needs 20"},
		{"adamw no clipping threshold", func(e *metal.Encoder) error {
			h := nn.AdamWParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Step: 1}
			return l.AdamW(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), 8, h)
		}, "max grad norm 0 positive"},
		{"adamw small v", func(e *metal.Encoder) error {
			h := nn.AdamWParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Step: 1, MaxGradNorm: 1}
			return l.AdamW(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), kernels.Whole(small), kernels.Whole(big), 8, h)
		}, "adamw: v holds 16 bytes, needs 32"},
		{"sample negative temperature", func(e *metal.Encoder) error {
			return l.Sample(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), 2, 8, -1, 1)
		}, "temperature -1 is negative"},
		{"sample small ids", func(e *metal.Encoder) error {
			return l.Sample(e, kernels.Whole(small), kernels.Whole(big), kernels.Whole(big), 5, 8, 1, 1)
		}, "sample: ids holds 16 bytes, needs 20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantLaunchError(t, d, tc.launch, tc.want) })
	}
	if n := d.PendingCommandBuffers(); n != 0 {
		t.Errorf("%d command buffers pending", n)
	}
}

// wantLaunchError encodes launch on a command buffer of its own, which it
// commits and waits for so that none is left pending, and requires launch
// to fail with an error containing want, having encoded nothing.
func wantLaunchError(t *testing.T, d *metal.Device, launch func(e *metal.Encoder) error, want string) {
	t.Helper()
	cb, err := d.NewCommandBuffer()
	if err != nil {
		t.Fatal(err)
	}
	e := cb.Encoder()
	err = launch(e)
	e.End()
	cb.Commit()
	if werr := cb.Wait(); werr != nil {
		t.Errorf("Wait: %v (nothing was encoded)", werr)
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got error %v, want one containing %q", err, want)
	}
}
