package kernels_test

import (
	"strings"
	"testing"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// TestLaunchErrors checks that the launchers reject bad arguments with an
// error before anything is encoded.
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cb, err := d.NewCommandBuffer()
			if err != nil {
				t.Fatal(err)
			}
			e := cb.Encoder()
			err = tc.launch(e)
			e.End()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
