//go:build darwin

package metal

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unsafe"
)

// Limits Metal enforces by aborting the process; they are checked here so
// that a mistake becomes an error from Wait instead.
const (
	maxBindings   = 31   // buffer and threadgroup-memory argument table entries
	maxSetBytes   = 4096 // setBytes:length:atIndex: limit
	tgMemoryAlign = 16   // setThreadgroupMemoryLength:atIndex: granularity
)

// CommandBuffer collects compute work for the GPU. Encode work with
// [CommandBuffer.Encoder], then Commit, then Wait; Wait must be called once
// for every command buffer, also on error paths, and it releases it (Metal
// lets a queue hold MaxPendingCommandBuffers and then blocks). A command
// buffer and its encoders are used by one goroutine at a time.
//
// Encoding mistakes (an index out of range, a missing pipeline, too many
// threads) are not sent to Metal, which would abort the process: the first
// one is kept and Wait returns it. A command buffer with a mistake recorded
// before Commit is not run at all.
type CommandBuffer struct {
	device  *Device
	buffer  id       // MTLCommandBuffer, retained
	encoder *Encoder // the open encoder, or nil
	kernels []string // names of the pipelines set, for error messages

	committed, waited bool
	sent              bool  // committed to Metal
	err               error // first encoding mistake
}

// NewCommandBuffer returns an empty command buffer on the device's queue.
// It fails when MaxPendingCommandBuffers are made and not waited for, where
// Metal would block for ever.
func (d *Device) NewCommandBuffer() (*CommandBuffer, error) {
	if d.queue == 0 {
		return nil, errClosed
	}
	if err := d.pending.acquire(); err != nil {
		return nil, err
	}
	var buf id
	withPool(func() {
		buf = retain(msgSend(d.queue, selCommandBuffer)) // autoreleased, so retained
	})
	if buf == 0 {
		d.pending.release()
		return nil, errors.New("metal: cannot create a command buffer")
	}
	return &CommandBuffer{device: d, buffer: buf}, nil
}

// fail records err unless an earlier mistake is already recorded.
func (c *CommandBuffer) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// Encoder opens a compute encoder. One encoder may be open at a time: End it
// before opening the next or committing.
func (c *CommandBuffer) Encoder() *Encoder {
	e := &Encoder{cb: c}
	for i := range e.offset {
		e.offset[i] = -1
	}
	switch {
	case c.committed || c.waited:
		c.fail(errors.New("metal: Encoder called after Commit"))
		return e
	case c.encoder != nil:
		c.fail(errors.New("metal: Encoder called while another encoder is open"))
		c.encoder.End()
	}
	withPool(func() {
		e.encoder = retain(msgSend(c.buffer, selComputeEncoder)) // autoreleased, so retained
	})
	if e.encoder == 0 {
		c.fail(errors.New("metal: cannot create a compute encoder"))
		return e
	}
	c.encoder = e
	return e
}

// Commit sends the command buffer to the GPU. Nothing is sent if an encoding
// mistake was recorded; Wait then returns it.
func (c *CommandBuffer) Commit() {
	if c.committed || c.waited {
		c.fail(errors.New("metal: Commit called twice or after Wait"))
		return
	}
	c.committed = true
	if c.encoder != nil {
		c.fail(errors.New("metal: Commit called with an encoder still open"))
		c.encoder.End()
	}
	if c.err == nil {
		withPool(func() { msgSendVoid(c.buffer, selCommit) }) // Metal may autorelease internally
		c.sent = true
	}
}

// Wait blocks until the GPU has finished the command buffer, releases it,
// and returns the first encoding mistake or the error Metal reports for the
// execution, naming the kernels the command buffer ran.
func (c *CommandBuffer) Wait() error {
	if c.waited {
		return errors.New("metal: Wait called twice")
	}
	c.waited = true
	if !c.committed {
		c.fail(errors.New("metal: Wait called before Commit"))
		if c.encoder != nil {
			c.encoder.End()
		}
	}
	var err error
	withPool(func() {
		if c.sent {
			msgSendVoid(c.buffer, selWait)
			if msgSendUint(c.buffer, selStatus) == statusError {
				what := "command buffer"
				if len(c.kernels) > 0 {
					what += " running " + strings.Join(c.kernels, ", ")
				}
				err = nsError(what, msgSend(c.buffer, selError))
			}
		}
		release(c.buffer)
	})
	c.buffer = 0
	c.device.pending.release()
	if c.err != nil {
		return c.err
	}
	return err
}

// Encoder encodes compute dispatches into a command buffer. Arguments set on
// it stay bound across dispatches until set again. The dispatches of a
// command buffer run in the order encoded, each one seeing the memory
// writes of those before it.
type Encoder struct {
	cb       *CommandBuffer
	encoder  id // MTLComputeCommandEncoder, retained; 0 once ended
	pipeline *Pipeline
	offset   [maxBindings]int // of each bound buffer; -1 for SetBytes data or none
	tgLen    [maxBindings]int // threadgroup memory set, rounded up to 16 bytes
	calls    int              // Dispatch calls
}

// Dispatches is the number of Dispatch calls made on e.
func (e *Encoder) Dispatches() int { return e.calls }

// fail records an encoding mistake in method, naming the kernel if one is
// set.
func (e *Encoder) fail(method, format string, args ...any) {
	where := "metal: Encoder." + method
	if e.pipeline != nil {
		where += fmt.Sprintf(" (kernel %q)", e.pipeline.name)
	}
	e.cb.fail(fmt.Errorf(where+": "+format, args...))
}

// usable reports whether the encoder is open, recording a mistake if not.
func (e *Encoder) usable(method string) bool {
	if e.encoder == 0 {
		e.fail(method, "encoder already ended")
		return false
	}
	return true
}

func (e *Encoder) checkIndex(method string, index int) bool {
	if index < 0 || index >= maxBindings {
		e.fail(method, "index %d out of range [0, %d)", index, maxBindings)
		return false
	}
	return true
}

// SetPipeline selects the kernel the following dispatches run.
func (e *Encoder) SetPipeline(p *Pipeline) {
	if !e.usable("SetPipeline") {
		return
	}
	if p == nil || p.state == 0 {
		e.fail("SetPipeline", "nil or released pipeline")
		return
	}
	withPool(func() { msgSendID(e.encoder, selSetPipeline, p.state) })
	e.pipeline = p
	if !slices.Contains(e.cb.kernels, p.name) {
		e.cb.kernels = append(e.cb.kernels, p.name)
	}
}

// SetBuffer binds b, starting offset bytes in, to [[buffer(index)]].
func (e *Encoder) SetBuffer(index int, b *Buffer, offset int) {
	if !e.usable("SetBuffer") || !e.checkIndex("SetBuffer", index) {
		return
	}
	if b == nil || b.buffer == 0 {
		e.fail("SetBuffer", "nil or released buffer at index %d", index)
		return
	}
	if offset < 0 || offset >= b.Len() {
		e.fail("SetBuffer", "offset %d outside the %d-byte buffer at index %d", offset, b.Len(), index)
		return
	}
	withPool(func() { msgSendBufferAt(e.encoder, selSetBuffer, b.buffer, uint(offset), uint(index)) })
	e.offset[index] = offset
}

// SetBytes copies data, at most 4 KiB, to [[buffer(index)]]: for small
// parameter structs.
func (e *Encoder) SetBytes(index int, data []byte) {
	if !e.usable("SetBytes") || !e.checkIndex("SetBytes", index) {
		return
	}
	if len(data) == 0 || len(data) > maxSetBytes {
		e.fail("SetBytes", "%d bytes at index %d, want 1 to %d", len(data), index, maxSetBytes)
		return
	}
	withPool(func() {
		msgSendBytes(e.encoder, selSetBytes, unsafe.Pointer(unsafe.SliceData(data)), uint(len(data)), uint(index))
	})
	e.offset[index] = -1
}

// SetThreadgroupMemory gives [[threadgroup(index)]] length bytes of
// threadgroup memory, rounded up to a multiple of 16 as Metal requires.
func (e *Encoder) SetThreadgroupMemory(index int, length int) {
	if !e.usable("SetThreadgroupMemory") || !e.checkIndex("SetThreadgroupMemory", index) {
		return
	}
	limit := e.cb.device.maxThreadgroupMemory
	if length <= 0 || length > limit {
		e.fail("SetThreadgroupMemory", "%d bytes at index %d, want 1 to %d", length, index, limit)
		return
	}
	rounded := (length + tgMemoryAlign - 1) &^ (tgMemoryAlign - 1)
	withPool(func() { msgSendUint2(e.encoder, selSetThreadgroupMemory, uint(rounded), uint(index)) })
	e.tgLen[index] = rounded
}

// Dispatch runs the pipeline over groups threadgroups of threadsPerGroup
// threads each; zero components count as 1.
func (e *Encoder) Dispatch(groups, threadsPerGroup Size) {
	e.calls++
	if !e.usable("Dispatch") {
		return
	}
	p := e.pipeline
	switch {
	case p == nil:
		e.fail("Dispatch", "no pipeline set")
		return
	case negative(groups) || negative(threadsPerGroup):
		e.fail("Dispatch", "negative size %v x %v", groups, threadsPerGroup)
		return
	case threadsPerGroup.Count() > p.maxThreads:
		e.fail("Dispatch", "%d threads per threadgroup, the pipeline allows %d", threadsPerGroup.Count(), p.maxThreads)
		return
	}
	// Threadgroup memory: the kernel's own plus the lengths set for its
	// threadgroup arguments (rounded up to 16 bytes), as Metal counts it.
	tg := p.staticTG
	for i, n := range e.tgLen {
		if p.tgArg[i] {
			tg += n
		}
	}
	if limit := e.cb.device.maxThreadgroupMemory; tg > limit {
		e.fail("Dispatch", "%d bytes of threadgroup memory (%d declared in the kernel, the rest set), the device allows %d", tg, p.staticTG, limit)
		return
	}
	for i, off := range e.offset {
		if a := p.align[i]; off > 0 && a > 1 && off%a != 0 {
			e.fail("Dispatch", "buffer %d is bound at offset %d, not a multiple of %d, the alignment of its data", i, off, a)
			return
		}
	}
	withPool(func() { msgSendDispatch(e.encoder, selDispatch, toMTLSize(groups), toMTLSize(threadsPerGroup)) })
}

// End closes the encoder. Ending twice does nothing.
func (e *Encoder) End() {
	if e.encoder == 0 {
		return
	}
	withPool(func() { // Metal may autorelease internally
		msgSendVoid(e.encoder, selEndEncoding)
		release(e.encoder)
	})
	e.encoder = 0
	if e.cb.encoder == e {
		e.cb.encoder = nil
	}
}

func negative(s Size) bool { return s.X < 0 || s.Y < 0 || s.Z < 0 }

func toMTLSize(s Size) mtlSize {
	return mtlSize{width: uint(max(s.X, 1)), height: uint(max(s.Y, 1)), depth: uint(max(s.Z, 1))}
}
