// Package metal is the Metal compute runtime seen from Go: devices, buffers,
// libraries compiled from Metal Shading Language (MSL) source, pipelines and
// command buffers with compute encoders.
//
// On darwin it drives the real GPU through the Objective-C runtime. On every
// other platform it is an MSL emulator that compiles the same shader source
// with clang against a shim of the Metal standard library and runs it on the
// CPU with Metal's threadgroup semantics: shared threadgroup memory, real
// barriers, 32-lane SIMD groups and simdgroup matrices. Barrier divergence
// and out-of-bounds buffer access are reported as errors from
// [CommandBuffer.Wait]. Code above this package cannot tell the two apart
// except by speed.
//
// The emulator also detects data races, unless compiled with
// [CompileOptions.NoRaceDetector]: a thread accessing a word of threadgroup
// memory that a thread of another SIMD group wrote since the last
// threadgroup_barrier(mem_threadgroup) they both passed, or writing a word
// such a thread read or wrote; and two threadgroups of one dispatch writing
// the same bytes of device memory. Lanes of one SIMD group execute in
// lockstep and do not race with each other; atomic operations never race.
// A race is an error from [CommandBuffer.Wait] naming the kernel, the
// memory (the threadgroup array, or the buffer) and the two threads.
//
// A command buffer holds any number of dispatches; nothing is guaranteed to
// have run, and no error is reported, until [CommandBuffer.Wait] returns.
// Every command buffer must be waited for, also on error paths (Wait on one
// never committed just releases it): Metal lets a queue hold 64, and makes
// the next one wait forever. Both implementations refuse a command buffer
// beyond [MaxPendingCommandBuffers] with an error instead.
package metal

import (
	"fmt"
	"sync/atomic"
)

// MaxPendingCommandBuffers is how many command buffers a device allows
// made and not yet waited for: Metal's default per queue.
const MaxPendingCommandBuffers = 64

// Size is a three-dimensional extent: a number of threadgroups in a grid, or
// a number of threads in a threadgroup. A zero component counts as 1.
type Size struct{ X, Y, Z int }

// Count is the number of elements of s, X*Y*Z, with zero components
// counting as 1.
func (s Size) Count() int {
	return max(s.X, 1) * max(s.Y, 1) * max(s.Z, 1)
}

// CompileOptions are the options for compiling a [Library] from source.
type CompileOptions struct {
	// FastMath allows the compiler to reassociate floating-point operations
	// and to ignore NaNs, infinities and signed zeros. Leave it false (safe
	// math) for doctor and tests, where results are compared with a
	// reference; set it for serving.
	FastMath bool

	// NoRaceDetector builds the emulator's libraries without the data-race
	// detector (see the package documentation), which slows kernels that
	// use threadgroup memory down several times. Leave it false for tests
	// and doctor. On darwin there is no detector and it has no effect.
	NoRaceDetector bool
}

// pendingCount counts a device's command buffers made and not yet waited
// for.
type pendingCount struct{ n atomic.Int64 }

// acquire counts one more command buffer, or fails where Metal would block
// for ever: with MaxPendingCommandBuffers already pending.
func (p *pendingCount) acquire() error {
	if p.n.Add(1) > MaxPendingCommandBuffers {
		p.n.Add(-1)
		return fmt.Errorf("metal: %d command buffers are not waited for (Metal would block)", MaxPendingCommandBuffers)
	}
	return nil
}

// release counts one command buffer less.
func (p *pendingCount) release() { p.n.Add(-1) }

// count is the number pending.
func (p *pendingCount) count() int { return int(p.n.Load()) }
