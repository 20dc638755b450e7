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
// A command buffer holds any number of dispatches; nothing is guaranteed to
// have run, and no error is reported, until [CommandBuffer.Wait] returns.
package metal

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
}
