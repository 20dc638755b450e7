package nntest

import (
	"sync"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/gpu"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// Backends are the backends golden tests run on: the CPU backend, the CPU
// backend behind Strict (no host views, queued ops, counted transfers), and
// the Metal backend (on the MSL emulator off a Mac, its race detector on).
func Backends(t testing.TB) []nn.Backend {
	return []nn.Backend{cpu.Backend{}, NewStrict(cpu.Backend{}), Metal(t)}
}

var (
	metalOnce sync.Once
	metalB    *gpu.Backend
	metalErr  error
)

// Metal returns the test process's Metal backend, its kernels compiled once.
func Metal(t testing.TB) *gpu.Backend {
	metalOnce.Do(func() { metalB, metalErr = gpu.Open(metal.CompileOptions{}) })
	if metalErr != nil {
		t.Fatal(metalErr)
	}
	return metalB
}
