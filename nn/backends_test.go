package nn_test

import (
	"sync"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/gpu"
	mtl "github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/nn/nntest"
)

// testBackends are the backends every golden test runs on: the CPU backend,
// the CPU backend behind the strict backend (no host views, queued ops,
// counted transfers), and the Metal backend (on the MSL emulator off a Mac).
func testBackends(t testing.TB) []nn.Backend {
	return []nn.Backend{cpu.Backend{}, nntest.NewStrict(cpu.Backend{}), metalBackend(t)}
}

var (
	metalOnce sync.Once
	metal     *gpu.Backend
	metalErr  error
)

// metalBackend returns the test process's Metal backend, its kernels
// compiled once.
func metalBackend(t testing.TB) *gpu.Backend {
	metalOnce.Do(func() { metal, metalErr = gpu.Open(mtl.CompileOptions{}) })
	if metalErr != nil {
		t.Fatal(metalErr)
	}
	return metal
}

// checkWaits fails the test when b is strict and the host waited other
// than by the downloads wanted (at most max of them, no Sync).
func checkWaits(t *testing.T, b nn.Backend, max int) {
	t.Helper()
	s, ok := b.(*nntest.Strict)
	if !ok {
		return
	}
	if s.Syncs != 0 || s.Downloads > max {
		t.Errorf("host waits: %d downloads and %d syncs, want at most %d downloads and no sync", s.Downloads, s.Syncs, max)
	}
}
