package nn_test

import (
	"testing"

	"github.com/goseal/ttt/gpu"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/nn/nntest"
)

// testBackends are the backends every golden test runs on.
func testBackends(t testing.TB) []nn.Backend { return nntest.Backends(t) }

// metalBackend is the test process's Metal backend.
func metalBackend(t testing.TB) *gpu.Backend { return nntest.Metal(t) }

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
