// Package gpu is the Metal backend: nn's ops as the project's own kernels
// (package kernels), on an Apple GPU through package metal on darwin and on
// the MSL emulator elsewhere.
//
// Ops are encoded, in order, onto command buffers committed every 1024
// dispatches; the host waits only in Download and Sync, which commit the
// last one and wait for them all. Tensors are
// Metal buffers in shared memory. Weights stay in their stored dtype: a
// safetensors file's memory map is wrapped once as a no-copy buffer and each
// weight is bound at its offset.
package gpu

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"unsafe"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
)

// Backend implements nn.Backend on a Metal device. Not safe for concurrent
// use.
type Backend struct {
	dev *metal.Device
	lib *kernels.Library

	cb       *metal.CommandBuffer // the open command buffer, nil when none is
	enc      *metal.Encoder
	inflight []*metal.CommandBuffer // committed, not yet waited for, in order
	err      error                  // the first encoding error since the last wait

	staging arena                     // uploads and tables queued work reads, reset at each wait
	scratch *metal.Buffer             // kernels' scratch (split-K partials, reductions), grown as needed
	mapped  map[mapping]*metal.Buffer // no-copy buffers over weight files

	// dead holds buffers to release after the next wait, once no queued
	// work can still read them: outgrown scratch, and the buffers of tensors
	// the garbage collector found unreachable (added from its goroutine).
	mu   sync.Mutex
	dead []*metal.Buffer

	// freed are buffers given back by Free, waiting for the next wait;
	// pool holds them after it, by length, for NewTensor to reuse, up to
	// poolLimit bytes in all (beyond that a freed buffer is released).
	freed     []*metal.Buffer
	pool      map[int][]*metal.Buffer
	pooled    int64
	poolLimit int64

	stats Stats
}

// mapping identifies a weight file's memory map.
type mapping struct {
	start *byte
	n     int
}

// Stats counts what the backend did since it was made.
type Stats struct {
	Dispatches     int   // kernel dispatches encoded
	CommandBuffers int   // command buffers committed
	Waits          int   // host waits (Download, Sync with work queued)
	Allocs         int   // device buffers allocated (tensors, scratch and staging growth)
	AllocBytes     int64 // their bytes
	LiveBytes      int64 // bytes of device buffers held now (weights mapped from files not counted)
	PeakBytes      int64 // the most LiveBytes has been
}

// New returns a backend on dev running lib's kernels.
func New(dev *metal.Device, lib *kernels.Library) *Backend {
	return &Backend{dev: dev, lib: lib, mapped: map[mapping]*metal.Buffer{}, pool: map[int][]*metal.Buffer{},
		poolLimit: int64(dev.RecommendedWorkingSet() / 4)}
}

// Open returns a backend on the default Metal device (the MSL emulator off
// darwin) with the kernel library compiled for it.
func Open(opts metal.CompileOptions) (*Backend, error) {
	dev, err := metal.Open()
	if err != nil {
		return nil, err
	}
	lib, err := kernels.Load(dev, opts)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return New(dev, lib), nil
}

// Device returns the backend's device.
func (b *Backend) Device() *metal.Device { return b.dev }

// Stats returns the counts so far, the open command buffer's dispatches
// included.
func (b *Backend) Stats() Stats {
	s := b.stats
	if b.enc != nil {
		s.Dispatches += b.enc.Dispatches()
	}
	return s
}

// handle is a tensor's storage: its buffer. Views of a tensor share the
// handle; when none is reachable any more, the buffer goes to dead.
type handle struct {
	buf     *metal.Buffer
	cleanup runtime.Cleanup
	owned   bool // made by NewTensor or a weight copy: Free may take it
}

// own makes buf a tensor's storage, released when no tensor refers to it.
func (b *Backend) own(buf *metal.Buffer) *handle {
	h := &handle{buf: buf, owned: true}
	h.cleanup = runtime.AddCleanup(h, b.releaseAfterWait, buf)
	return h
}

// releaseAfterWait releases buf after the next wait.
func (b *Backend) releaseAfterWait(buf *metal.Buffer) {
	b.mu.Lock()
	b.dead = append(b.dead, buf)
	b.mu.Unlock()
}

// Free implements nn.Backend: the buffer is reused by a later NewTensor of
// the same size once the work queued now is done.
func (b *Backend) Free(t *nn.Tensor) {
	h, ok := t.Storage.(*handle)
	if !ok || h == nil || h.buf == nil || !h.owned {
		panic("gpu: Free of a tensor that is not a live tensor made by NewTensor")
	}
	h.cleanup.Stop()
	if b.idle() { // nothing queued can read it
		b.toPool(h.buf)
	} else {
		b.freed = append(b.freed, h.buf)
	}
	h.buf = nil
}

// toPool keeps buf for reuse, or releases it when the pool is full.
func (b *Backend) toPool(buf *metal.Buffer) {
	if b.pooled+int64(buf.Len()) > b.poolLimit {
		b.release([]*metal.Buffer{buf})
		return
	}
	b.pool[buf.Len()] = append(b.pool[buf.Len()], buf)
	b.pooled += int64(buf.Len())
}

// drainPool releases every pooled buffer.
func (b *Backend) drainPool() {
	for n, bufs := range b.pool {
		b.release(bufs)
		delete(b.pool, n)
	}
	b.pooled = 0
}

// arg returns t as a kernel argument: its buffer and byte offset.
func arg(t *nn.Tensor) kernels.Buf {
	if t == nil {
		return kernels.Buf{}
	}
	s, ok := t.Storage.(*handle)
	if !ok || s == nil {
		panic(fmt.Sprintf("gpu: a tensor with storage %T was not made by the Metal backend", t.Storage))
	}
	if s.buf == nil {
		panic("gpu: a tensor used after Free")
	}
	return kernels.Buf{Buffer: s.buf, Off: t.Off * t.DType.Size()}
}

// bytes returns t's contents in shared memory.
func bytes(t *nn.Tensor) []byte {
	a := arg(t)
	return a.Buffer.Bytes()[a.Off : a.Off+t.Len()*t.DType.Size()]
}

// Name implements nn.Backend.
func (b *Backend) Name() string { return "metal" }

// size is the length of a buffer for n bytes: at least 4 and a multiple of
// 16, so that kernels may take their vectorised path (see kernels.Buf).
func size(n int) int { return (max(n, 4) + 15) &^ 15 }

// class is the length of a tensor's buffer for n bytes: size(n) up to 64
// KiB, above that rounded up to a multiple of a sixteenth of the power of
// two at or above it (at most 12.5% more), so that freed buffers serve
// tensors of nearby sizes too.
func class(n int) int {
	n = size(n)
	if n <= 64<<10 {
		return n
	}
	step := 1 << (bits.Len(uint(n-1)) - 4)
	return (n + step - 1) / step * step
}

// newBuffer allocates a buffer of size(n) bytes. When the device has no
// room, the pooled buffers are released and the allocation tried again.
func (b *Backend) newBuffer(n int) *metal.Buffer {
	buf, err := b.dev.NewBuffer(size(n))
	if err != nil && b.pooled > 0 {
		b.drainPool()
		buf, err = b.dev.NewBuffer(size(n))
	}
	if err != nil {
		panic(fmt.Sprintf("gpu: %v", err)) // out of device memory: plans keep requests inside the budget
	}
	b.stats.Allocs++
	b.stats.AllocBytes += int64(buf.Len())
	b.stats.LiveBytes += int64(buf.Len())
	b.stats.PeakBytes = max(b.stats.PeakBytes, b.stats.LiveBytes)
	return buf
}

// release frees buffers no queued work reads any more.
func (b *Backend) release(bufs []*metal.Buffer) {
	for _, buf := range bufs {
		b.stats.LiveBytes -= int64(buf.Len())
		buf.Release()
	}
}

// NewTensor implements nn.Backend.
func (b *Backend) NewTensor(dt hf.DType, rows, cols int) *nn.Tensor {
	if dt != hf.F32 && dt != hf.I32 {
		panic(fmt.Sprintf("gpu: NewTensor of type %v (only F32 and I32 are made)", dt))
	}
	var buf *metal.Buffer
	n := class(4 * rows * cols)
	if free := b.pool[n]; len(free) > 0 {
		buf, b.pool[n] = free[len(free)-1], free[:len(free)-1]
		b.pooled -= int64(n)
	} else {
		buf = b.newBuffer(n)
	}
	clear(buf.Bytes()) // not in flight: no queued work reads a new or pooled buffer
	return &nn.Tensor{Rows: rows, Cols: cols, DType: dt, Storage: b.own(buf)}
}

// Weight implements nn.Backend: the weight stays in its stored dtype, inside
// a no-copy buffer over its file's memory map when it has one and its
// offset is 4-byte aligned, else in a buffer of its own.
func (b *Backend) Weight(t *hf.StoredTensor, rows, cols int) *nn.Tensor {
	w := &nn.Tensor{Rows: rows, Cols: cols, DType: t.DType}
	if len(t.Mapping) > 0 && len(t.Data) > 0 {
		off := int(uintptr(unsafe.Pointer(&t.Data[0])) - uintptr(unsafe.Pointer(&t.Mapping[0])))
		key := mapping{&t.Mapping[0], len(t.Mapping)}
		buf := b.mapped[key]
		aligned := off%4 == 0 && off%t.DType.Size() == 0
		if buf == nil && aligned {
			// A file Metal cannot wrap (over its largest buffer, say) is
			// copied tensor by tensor below instead.
			if nb, err := b.dev.NewBufferNoCopy(t.Mapping); err == nil {
				buf = nb
				b.mapped[key] = buf
			}
		}
		if buf != nil && aligned {
			w.Storage, w.Off = &handle{buf: buf}, off/t.DType.Size()
			return w
		}
	}
	buf := b.newBuffer(len(t.Data))
	copy(buf.Bytes(), t.Data)
	w.Storage = b.own(buf)
	return w
}

// ReleaseMapping drops the no-copy buffer over a weight file's memory map,
// after the work queued so far; the model's weights from that file must not
// be used after. nn.Model.Close calls it before unmapping the file.
func (b *Backend) ReleaseMapping(m []byte) error {
	err := b.Sync()
	if len(m) == 0 {
		return err
	}
	key := mapping{&m[0], len(m)}
	if buf := b.mapped[key]; buf != nil {
		buf.Release()
		delete(b.mapped, key)
	}
	return err
}

// idle reports whether no work is queued: every command buffer has been
// waited for.
func (b *Backend) idle() bool { return b.cb == nil && len(b.inflight) == 0 }

// commitEvery is how many dispatches a command buffer takes before it is
// committed and the next one opened, without waiting: the GPU starts on the
// work while the rest is encoded, and no command buffer runs for long (a
// Mac may stop one that keeps the GPU from its display for seconds).
const commitEvery = 1024

// commit ends and commits the open command buffer, if any, without waiting.
func (b *Backend) commit() {
	if b.cb == nil {
		return
	}
	b.stats.Dispatches += b.enc.Dispatches()
	b.enc.End()
	b.cb.Commit()
	b.inflight = append(b.inflight, b.cb)
	b.cb, b.enc = nil, nil
	b.stats.CommandBuffers++
}

// encoder returns the open command buffer's encoder, opening one if needed.
func (b *Backend) encoder() *metal.Encoder {
	if b.cb == nil {
		cb, err := b.dev.NewCommandBuffer()
		if err != nil {
			panic(fmt.Sprintf("gpu: %v", err))
		}
		b.cb, b.enc = cb, cb.Encoder()
	}
	return b.enc
}

// launch records the outcome of encoding one kernel launch.
func (b *Backend) launch(err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
	if b.enc != nil && b.enc.Dispatches() >= commitEvery {
		b.commit()
	}
}

// Sync implements nn.Backend: it commits the open command buffer and waits
// for every committed one, then frees what only queued work needed.
func (b *Backend) Sync() error {
	b.commit()
	var err error
	if len(b.inflight) > 0 {
		for _, cb := range b.inflight {
			err = errors.Join(err, cb.Wait())
		}
		b.inflight = b.inflight[:0]
		b.stats.Waits++
	}
	for _, buf := range b.freed {
		b.toPool(buf)
	}
	b.freed = b.freed[:0]
	b.mu.Lock()
	dead := b.dead
	b.dead = nil
	b.mu.Unlock()
	b.release(dead)
	b.staging.reset()
	err, b.err = errors.Join(b.err, err), nil
	if err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	return nil
}

// asBytes is the memory of s.
func asBytes[T float32 | int32 | uint32](s []T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s))
}

// Upload implements nn.Backend. With nothing queued the values are written
// in place; otherwise they are staged and copied by a kernel in queue order.
func (b *Backend) Upload(dst *nn.Tensor, src []float32) { b.upload(dst, asBytes(src)) }

// UploadInts implements nn.Backend like Upload.
func (b *Backend) UploadInts(dst *nn.Tensor, src []int32) { b.upload(dst, asBytes(src)) }

func (b *Backend) upload(dst *nn.Tensor, src []byte) {
	n := 4 * dst.Len()
	if len(src) < n {
		panic(fmt.Sprintf("gpu: upload of %d bytes into a tensor of %d", len(src), n))
	}
	if b.idle() {
		copy(bytes(dst), src[:n])
		return
	}
	staged := b.stage(src[:n])
	b.launch(b.lib.Copy(b.encoder(), arg(dst), staged, dst.Len()))
}

// stage copies data into the staging arena, where it stays until the next
// wait, and returns it as a kernel argument.
func (b *Backend) stage(data []byte) kernels.Buf {
	buf, off := b.staging.alloc(b, len(data))
	copy(buf.Bytes()[off:], data)
	return kernels.Buf{Buffer: buf, Off: off}
}

// stageTable stages a table of uint32 for a kernel to read.
func (b *Backend) stageTable(t []uint32) kernels.Buf {
	return b.stage(asBytes(t))
}

// Download implements nn.Backend.
func (b *Backend) Download(dst []float32, src *nn.Tensor) error { return b.download(asBytes(dst), src) }

// DownloadInts implements nn.Backend.
func (b *Backend) DownloadInts(dst []int32, src *nn.Tensor) error {
	return b.download(asBytes(dst), src)
}

// download waits for the queued work and copies src into dst.
func (b *Backend) download(dst []byte, src *nn.Tensor) error {
	if err := b.Sync(); err != nil {
		return err
	}
	copy(dst, bytes(src))
	return nil
}

// scratchBuf returns at least n bytes of kernel scratch. Launches run one
// after another, so every launch may use the same scratch.
func (b *Backend) scratchBuf(n int) kernels.Buf {
	if n == 0 {
		return kernels.Buf{}
	}
	if b.scratch == nil || b.scratch.Len() < n {
		if b.scratch != nil {
			b.releaseAfterWait(b.scratch) // queued work may still use it
		}
		b.scratch = b.newBuffer(max(n, 2*lenOf(b.scratch)))
	}
	return kernels.Whole(b.scratch)
}

func lenOf(buf *metal.Buffer) int {
	if buf == nil {
		return 0
	}
	return buf.Len()
}

// arena hands out regions of staging buffers for the queued work of one
// command buffer; reset makes them all free again after a wait.
type arena struct {
	bufs []*metal.Buffer
	cur  int // the buffer being filled
	used int // bytes used in it
}

func (a *arena) alloc(b *Backend, n int) (*metal.Buffer, int) {
	n = (n + 15) &^ 15
	for a.cur < len(a.bufs) {
		if a.used+n <= a.bufs[a.cur].Len() {
			off := a.used
			a.used += n
			return a.bufs[a.cur], off
		}
		a.cur++
		a.used = 0
	}
	size := max(1<<20, n, 2*lenOf(lastOf(a.bufs)))
	a.bufs = append(a.bufs, b.newBuffer(size))
	a.used = n
	return a.bufs[a.cur], 0
}

func lastOf(bufs []*metal.Buffer) *metal.Buffer {
	if len(bufs) == 0 {
		return nil
	}
	return bufs[len(bufs)-1]
}

func (a *arena) reset() { a.cur, a.used = 0, 0 }
