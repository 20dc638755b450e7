//go:build darwin || cgo

package metal_test

import (
	"strings"
	"testing"

	"github.com/goseal/ttt/metal"
)

// pendingSource has a float and a half buffer and two threadgroup memory
// arguments, for launches that fail in different ways.
const pendingSource = `#include <metal_stdlib>
using namespace metal;
kernel void k(device float* x [[buffer(0)]], device half* h [[buffer(1)]],
              threadgroup float* t [[threadgroup(0)]], threadgroup float* u [[threadgroup(1)]],
              uint i [[thread_position_in_grid]]) {
	x[i] = float(h[i]);
}`

// TestFailingLaunchesReleaseCommandBuffers makes 200 launches that fail, in
// every way a launch can fail from Wait, and checks that none leaves its
// command buffer pending: Metal allows 64 and then blocks for ever.
func TestFailingLaunchesReleaseCommandBuffers(t *testing.T) {
	d, err := metal.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	lib, err := d.NewLibrary(pendingSource, metal.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Release()
	p, err := lib.Pipeline("k")
	if err != nil {
		t.Fatal(err)
	}
	buf, err := d.NewBuffer(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Release()
	failures := []struct {
		name   string
		encode func(e *metal.Encoder)
		want   string
	}{
		{"buffer index", func(e *metal.Encoder) { e.SetBuffer(40, buf, 0) }, "out of range"},
		{"no pipeline", func(e *metal.Encoder) { e.SetPipeline(nil) }, "pipeline"},
		{"misaligned float buffer", func(e *metal.Encoder) { e.SetBuffer(0, buf, 2) }, "not a multiple of 4"},
		{"misaligned half buffer", func(e *metal.Encoder) { e.SetBuffer(1, buf, 1) }, "not a multiple of 2"},
		{"threadgroup memory", func(e *metal.Encoder) {
			// 16 390 bytes fit alone; rounded up to 16 bytes each and
			// added (32 800) they exceed the 32 KiB of every Apple GPU.
			e.SetThreadgroupMemory(0, 16390)
			e.SetThreadgroupMemory(1, 16390)
		}, "threadgroup memory"},
	}
	for i := range 200 {
		f := failures[i%len(failures)]
		cb, err := d.NewCommandBuffer()
		if err != nil {
			t.Fatalf("launch %d: %v", i, err)
		}
		e := cb.Encoder()
		e.SetPipeline(p)
		e.SetBuffer(0, buf, 0)
		e.SetBuffer(1, buf, 0)
		e.SetThreadgroupMemory(0, 16)
		e.SetThreadgroupMemory(1, 16)
		f.encode(e)
		e.Dispatch(metal.Size{X: 1}, metal.Size{X: 32})
		e.End()
		if i%7 == 0 {
			// Not committed: Wait alone releases it.
			if err := cb.Wait(); err == nil {
				t.Fatalf("launch %d: Wait without Commit succeeded", i)
			}
			continue
		}
		cb.Commit()
		if err := cb.Wait(); err == nil || !strings.Contains(err.Error(), f.want) {
			t.Fatalf("launch %d (%s): got %v, want an error containing %q", i, f.name, err, f.want)
		}
	}
	if n := d.PendingCommandBuffers(); n != 0 {
		t.Errorf("%d command buffers pending after 200 failed launches", n)
	}
}

// TestPendingLimit makes command buffers without waiting for them: past
// MaxPendingCommandBuffers, NewCommandBuffer fails instead of blocking.
func TestPendingLimit(t *testing.T) {
	d, err := metal.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var cbs []*metal.CommandBuffer
	for range metal.MaxPendingCommandBuffers {
		cb, err := d.NewCommandBuffer()
		if err != nil {
			t.Fatal(err)
		}
		cbs = append(cbs, cb)
	}
	if _, err := d.NewCommandBuffer(); err == nil || !strings.Contains(err.Error(), "not waited for") {
		t.Errorf("command buffer %d: got %v, want an error", metal.MaxPendingCommandBuffers+1, err)
	}
	for _, cb := range cbs {
		cb.Commit()
		if err := cb.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.PendingCommandBuffers(); n != 0 {
		t.Errorf("%d command buffers pending, want 0", n)
	}
}
