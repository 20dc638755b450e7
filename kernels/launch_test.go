package kernels_test

import (
	"strings"
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
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
	big, err := d.NewBuffer(4096)
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
			return l.MatMul(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), kernels.F32, -1, 2, 2, false, false, false)
		}, "bad shape m=-1"},
		{"matmul small c", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(small), kernels.Whole(big), kernels.Whole(big), kernels.F32, 4, 4, 4, false, false, false)
		}, "c holds 16 bytes, needs 64"},
		{"matmul small bf16 weights", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(small), kernels.BF16, 4, 4, 4, false, true, false)
		}, "b holds 16 bytes, needs 32"},
		{"matmul nil a", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(big), kernels.Buf{}, kernels.Whole(big), kernels.F32, 4, 4, 4, false, false, false)
		}, "a is nil"},
		{"matmul bad dtype", func(e *metal.Encoder) error {
			return l.MatMul(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), kernels.DType(7), 4, 4, 4, false, false, false)
		}, "bad weight type DType(7)"},
		{"rmsnorm small x", func(e *metal.Encoder) error {
			return l.RMSNorm(e, kernels.Whole(big), kernels.Whole(small), kernels.Whole(big), kernels.F16, 2, 8, 1e-6)
		}, "x holds 16 bytes, needs 64"},
		{"rmsnorm negative rows", func(e *metal.Encoder) error {
			return l.RMSNorm(e, kernels.Whole(big), kernels.Whole(big), kernels.Whole(big), kernels.F32, -2, 8, 1e-6)
		}, "bad shape rows=-2"},
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
			cb.Commit()
			if werr := cb.Wait(); werr != nil {
				t.Errorf("Wait: %v (nothing was encoded)", werr)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if n := d.PendingCommandBuffers(); n != 0 {
		t.Errorf("%d command buffers pending", n)
	}
}
