//go:build !darwin && !cgo

package metal

import (
	"errors"
	"runtime"
)

// errNoCgo is what every entry point returns: the MSL emulator loads
// clang-built kernels and handles their faults through cgo.
var errNoCgo = errors.New("metal: the MSL emulator needs cgo (build with CGO_ENABLED=1)")

// Device is the MSL emulator, which this build (without cgo) lacks.
type Device struct{}

// Open fails: this build has no Metal device.
func Open() (*Device, error) { return nil, errNoCgo }

// Name describes the missing device.
func (d *Device) Name() string { return "none (built without cgo)" }

// Family is 0: no device.
func (d *Device) Family() int { return 0 }

// MaxThreadsPerThreadgroup is 0: no device.
func (d *Device) MaxThreadsPerThreadgroup() int { return 0 }

// RecommendedWorkingSet is 0: no device.
func (d *Device) RecommendedWorkingSet() uint64 { return 0 }

// UnifiedMemory is false: no device.
func (d *Device) UnifiedMemory() bool { return false }

// OSVersion is the operating system's name.
func (d *Device) OSVersion() string { return runtime.GOOS }

// LanguageVersion is empty: no device compiles anything.
func (d *Device) LanguageVersion() string { return "" }

// Close does nothing.
func (d *Device) Close() {}

// Buffer is device memory; this build has none.
type Buffer struct{}

// NewBuffer fails without cgo.
func (d *Device) NewBuffer(length int) (*Buffer, error) { return nil, errNoCgo }

// NewBufferFrom fails without cgo.
func (d *Device) NewBufferFrom(b []byte) (*Buffer, error) { return nil, errNoCgo }

// NewBufferNoCopy fails without cgo.
func (d *Device) NewBufferNoCopy(mem []byte) (*Buffer, error) { return nil, errNoCgo }

// Len is 0.
func (b *Buffer) Len() int { return 0 }

// Bytes is nil.
func (b *Buffer) Bytes() []byte { return nil }

// Release does nothing.
func (b *Buffer) Release() {}

// Library is compiled MSL; this build has none.
type Library struct{}

// NewLibrary fails without cgo.
func (d *Device) NewLibrary(source string, opts CompileOptions) (*Library, error) {
	return nil, errNoCgo
}

// Pipeline fails without cgo.
func (l *Library) Pipeline(function string) (*Pipeline, error) { return nil, errNoCgo }

// Release does nothing.
func (l *Library) Release() {}

// Pipeline is a kernel ready to dispatch; this build has none.
type Pipeline struct{}

// MaxTotalThreadsPerThreadgroup is 0.
func (p *Pipeline) MaxTotalThreadsPerThreadgroup() int { return 0 }

// ThreadExecutionWidth is 0.
func (p *Pipeline) ThreadExecutionWidth() int { return 0 }

// CommandBuffer holds dispatches; this build runs none.
type CommandBuffer struct{}

// NewCommandBuffer fails without cgo.
func (d *Device) NewCommandBuffer() (*CommandBuffer, error) { return nil, errNoCgo }

// PendingCommandBuffers is 0: no command buffer can be made.
func (d *Device) PendingCommandBuffers() int { return 0 }

// Encoder returns an encoder that records nothing.
func (c *CommandBuffer) Encoder() *Encoder { return &Encoder{} }

// Commit does nothing.
func (c *CommandBuffer) Commit() {}

// Wait fails without cgo.
func (c *CommandBuffer) Wait() error { return errNoCgo }

// Encoder records dispatches; this build records none.
type Encoder struct{}

// SetPipeline does nothing.
func (e *Encoder) SetPipeline(p *Pipeline) {}

// SetBuffer does nothing.
func (e *Encoder) SetBuffer(index int, b *Buffer, offset int) {}

// SetBytes does nothing.
func (e *Encoder) SetBytes(index int, data []byte) {}

// SetThreadgroupMemory does nothing.
func (e *Encoder) SetThreadgroupMemory(index int, length int) {}

// Dispatch does nothing.
func (e *Encoder) Dispatch(groups, threadsPerGroup Size) {}

// Dispatches is 0.
func (e *Encoder) Dispatches() int { return 0 }

// End does nothing.
func (e *Encoder) End() {}
