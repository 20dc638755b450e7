//go:build !darwin && cgo

package metal

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include <dlfcn.h>
#include "emu_host.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goseal/ttt/metal/msl"
)

// The emulator's fixed properties.
const (
	emuFamily        = 9
	emuMaxThreads    = 1024
	emuSIMDWidth     = 32
	emuStackSize     = 64 << 10
	emuWorkingSet    = 8 << 30
	emuMaxBufferArgs = 31
)

// watchdog is how long one dispatch may run before the emulator stops it
// with an error: $SEAL_TTT_EMU_TIMEOUT (a Go duration), else a minute.
var watchdog = sync.OnceValue(func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SEAL_TTT_EMU_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return time.Minute
})

var installHandlers = sync.OnceValue(func() error {
	if C.emu_install_handlers() != 0 {
		return errors.New("metal: cannot install the emulator's fault handlers")
	}
	return nil
})

// Device is the MSL emulator: kernels run on the CPU, one threadgroup at a
// time per worker, with as many workers as GOMAXPROCS.
type Device struct {
	workers chan *C.emu_worker
	nwork   int
	queue   chan *CommandBuffer
	mu      sync.Mutex // guards closed and sends on queue
	closed  bool
	pending pendingCount
}

// Open returns the emulator device. It needs clang-19 (see msl.Clang) to
// compile libraries.
func Open() (*Device, error) {
	if err := installHandlers(); err != nil {
		return nil, err
	}
	n := runtime.GOMAXPROCS(0)
	d := &Device{workers: make(chan *C.emu_worker, n), nwork: n, queue: make(chan *CommandBuffer, 64)}
	for i := 0; i < n; i++ {
		w := C.emu_worker_new(emuMaxThreads, emuStackSize)
		if w == nil {
			d.freeWorkers()
			return nil, errors.New("metal: cannot allocate the emulator's fiber stacks")
		}
		d.workers <- w
	}
	go d.run()
	return d, nil
}

// Name describes the device.
func (d *Device) Name() string {
	return fmt.Sprintf("MSL emulator (%s/%s, %d workers)", runtime.GOOS, runtime.GOARCH, d.nwork)
}

// Family is the Apple GPU family the emulator stands in for.
func (d *Device) Family() int { return emuFamily }

// MaxThreadsPerThreadgroup is 1024, as on Apple GPUs.
func (d *Device) MaxThreadsPerThreadgroup() int { return emuMaxThreads }

// RecommendedWorkingSet is a nominal 8 GiB.
func (d *Device) RecommendedWorkingSet() uint64 { return emuWorkingSet }

// UnifiedMemory is true: kernels run on the CPU, in the CPU's memory.
func (d *Device) UnifiedMemory() bool { return true }

// OSVersion is the operating system's name and kernel release, such as
// "linux 6.1.0-18-amd64".
func (d *Device) OSVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return runtime.GOOS
	}
	return runtime.GOOS + " " + unix.ByteSliceToString(u.Release[:])
}

// LanguageVersion is the Metal Shading Language version the emulator
// compiles as (__METAL_VERSION__), within the subset of msl/SUBSET.md.
func (d *Device) LanguageVersion() string { return "3.1 (the emulator's subset)" }

// Close stops the device's queue. Command buffers committed before Close
// still complete.
func (d *Device) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		close(d.queue)
	}
}

func (d *Device) freeWorkers() {
	for {
		select {
		case w := <-d.workers:
			C.emu_worker_free(w)
		default:
			return
		}
	}
}

// Buffer is device memory. Buffers made by NewBuffer and NewBufferFrom end
// against an inaccessible page, so a kernel reading or writing past the end
// fails with an error instead of touching other memory.
type Buffer struct {
	mem    []byte // the whole mapping (nil for NoCopy)
	data   []byte
	base   unsafe.Pointer // &data[0], also for an empty buffer
	guard  uintptr        // start of the guard page, 0 if none
	mapped bool
	// shadow is the race detector's record of the last writes to the
	// buffer, allocated when a library with the detector first binds it.
	shadow []byte
}

// raceShadow returns b's race-detector shadow: one 8-byte entry per
// EMU_RACE_GRAIN bytes, in memory that takes pages only where written.
func (b *Buffer) raceShadow() (unsafe.Pointer, error) {
	if b.shadow == nil {
		n := (len(b.data) + C.EMU_RACE_GRAIN - 1) / C.EMU_RACE_GRAIN * 8
		n = (n + pageSize - 1) / pageSize * pageSize
		m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
		if err != nil {
			return nil, fmt.Errorf("allocating the race detector's shadow of a %d-byte buffer: %w", len(b.data), err)
		}
		b.shadow = m
	}
	return unsafe.Pointer(&b.shadow[0]), nil
}

var pageSize = os.Getpagesize()

// NewBuffer returns a zeroed buffer of length bytes.
func (d *Device) NewBuffer(length int) (*Buffer, error) {
	if length < 0 {
		return nil, fmt.Errorf("metal: negative buffer length %d", length)
	}
	size := (length+pageSize-1)/pageSize*pageSize + pageSize
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("metal: allocating a %d-byte buffer: %w", length, err)
	}
	guard := size - pageSize
	if err := unix.Mprotect(mem[guard:], unix.PROT_NONE); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("metal: allocating a %d-byte buffer: %w", length, err)
	}
	// Align the start to the largest power of two (up to 16) dividing the
	// length, so the end meets the guard page exactly for typical lengths.
	align := 16
	for align > 1 && length%align != 0 {
		align /= 2
	}
	start := (guard - length) / align * align
	return &Buffer{mem: mem, data: mem[start : start+length : start+length], base: unsafe.Pointer(&mem[start]),
		guard: uintptr(unsafe.Pointer(&mem[guard])), mapped: true}, nil
}

// NewBufferFrom returns a buffer holding a copy of b.
func (d *Device) NewBufferFrom(b []byte) (*Buffer, error) {
	buf, err := d.NewBuffer(len(b))
	if err != nil {
		return nil, err
	}
	copy(buf.data, b)
	return buf, nil
}

// NewBufferNoCopy wraps mem, which must be page-aligned and a whole number
// of pages long (an mmap'd file, for instance). Out-of-bounds access to it
// is not detected.
func (d *Device) NewBufferNoCopy(mem []byte) (*Buffer, error) {
	if len(mem) == 0 || len(mem)%pageSize != 0 || uintptr(unsafe.Pointer(&mem[0]))%uintptr(pageSize) != 0 {
		return nil, fmt.Errorf("metal: NewBufferNoCopy needs page-aligned memory of whole pages (%d bytes)", len(mem))
	}
	return &Buffer{data: mem, base: unsafe.Pointer(&mem[0])}, nil
}

// Len is the buffer's length in bytes.
func (b *Buffer) Len() int { return len(b.data) }

// Bytes returns the buffer's contents, valid until Release.
func (b *Buffer) Bytes() []byte { return b.data }

// Release frees the buffer's memory (for NewBufferNoCopy, only the wrapper).
func (b *Buffer) Release() {
	if b.mapped {
		unix.Munmap(b.mem)
	}
	if b.shadow != nil {
		unix.Munmap(b.shadow)
	}
	b.mem, b.data, b.base, b.mapped, b.shadow = nil, nil, nil, false, nil
}

// Library is compiled MSL: a shared object built by clang.
type Library struct {
	handle  unsafe.Pointer
	run     unsafe.Pointer
	where   unsafe.Pointer
	scratch uint64
	race    bool // built with the race detector
	kernels map[string]msl.Kernel

	mu    sync.Mutex
	pipes map[string]*Pipeline

	// use is held for reading while a dispatch runs, so Release cannot
	// unload the code under it.
	use sync.RWMutex
}

// NewLibrary compiles MSL source. Compile errors carry clang's text, with
// positions in the source ("program_source:LINE:COL", or the file names of
// #line directives).
func (d *Device) NewLibrary(source string, opts CompileOptions) (*Library, error) {
	built, err := msl.Build(source, msl.Options{FastMath: opts.FastMath, Race: !opts.NoRaceDetector})
	if err != nil {
		return nil, fmt.Errorf("metal: %w", err)
	}
	cpath := C.CString(built.Path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	h := C.emu_dlopen(cpath, &cerr)
	if h == nil {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("metal: loading %s: %s", built.Path, C.GoString(cerr))
	}
	l := &Library{handle: h, race: !opts.NoRaceDetector, kernels: map[string]msl.Kernel{}, pipes: map[string]*Pipeline{}}
	for _, k := range built.Kernels {
		l.kernels[k.Name] = k
	}
	syms := map[string]*unsafe.Pointer{"__emu_run": &l.run, "__emu_where": &l.where}
	for name, p := range syms {
		if *p = l.sym(name); *p == nil {
			l.Release()
			return nil, fmt.Errorf("metal: %s lacks %s", built.Path, name)
		}
	}
	size := l.sym("__emu_scratch_size")
	if size == nil {
		l.Release()
		return nil, fmt.Errorf("metal: %s lacks __emu_scratch_size", built.Path)
	}
	l.scratch = uint64(C.emu_call_scratch_size(size))
	return l, nil
}

func (l *Library) sym(name string) unsafe.Pointer {
	c := C.CString(name)
	defer C.free(unsafe.Pointer(c))
	return C.dlsym(l.handle, c)
}

// Pipeline returns the compute pipeline of a kernel function by its host
// name.
func (l *Library) Pipeline(function string) (*Pipeline, error) {
	l.use.RLock()
	defer l.use.RUnlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.handle == nil {
		return nil, fmt.Errorf("metal: Pipeline(%q) on a released library", function)
	}
	if p, ok := l.pipes[function]; ok {
		return p, nil
	}
	k, ok := l.kernels[function]
	if !ok {
		return nil, fmt.Errorf("metal: no kernel function %q in the library", function)
	}
	entry := l.sym("__emu_k_" + function)
	if entry == nil {
		return nil, fmt.Errorf("metal: kernel function %q has no entry point", function)
	}
	p := &Pipeline{lib: l, kernel: k, entry: entry}
	if a := l.sym("__emu_a_" + function); a != nil {
		n := 0
		for _, q := range k.Params {
			if q.Kind == msl.BufferParam {
				n++
			}
		}
		p.align = slices.Clone(unsafe.Slice((*uint32)(a), n))
	}
	l.pipes[function] = p
	return p, nil
}

// Release unloads the library once no dispatch of it is running.
// Dispatches of its pipelines that run later fail.
func (l *Library) Release() {
	l.use.Lock()
	defer l.use.Unlock()
	if l.handle != nil {
		C.dlclose(l.handle)
		l.handle = nil
	}
}

// Pipeline is one kernel function ready to dispatch.
type Pipeline struct {
	lib    *Library
	kernel msl.Kernel
	entry  unsafe.Pointer
	align  []uint32 // alignment of each buffer parameter's data, in order
}

// MaxTotalThreadsPerThreadgroup is 1024 for every kernel.
func (p *Pipeline) MaxTotalThreadsPerThreadgroup() int { return emuMaxThreads }

// ThreadExecutionWidth is the SIMD-group width, 32.
func (p *Pipeline) ThreadExecutionWidth() int { return emuSIMDWidth }

// PendingCommandBuffers is the number of command buffers made and not yet
// waited for.
func (d *Device) PendingCommandBuffers() int { return d.pending.count() }

// CommandBuffer holds dispatches until it is committed.
type CommandBuffer struct {
	dev       *Device
	cmds      []*dispatch
	enc       *Encoder
	committed bool
	waited    bool
	done      chan struct{}
	err       error
}

// NewCommandBuffer returns an empty command buffer. It fails when
// MaxPendingCommandBuffers are made and not waited for, where Metal would
// block for ever.
func (d *Device) NewCommandBuffer() (*CommandBuffer, error) {
	if err := d.pending.acquire(); err != nil {
		return nil, err
	}
	return &CommandBuffer{dev: d, done: make(chan struct{})}, nil
}

// Encoder returns a compute encoder that appends to c. Only one may be open
// at a time.
func (c *CommandBuffer) Encoder() *Encoder {
	if c.enc != nil && !c.enc.ended {
		c.enc.err = errors.New("a new encoder was opened before End")
	}
	c.enc = &Encoder{cb: c}
	return c.enc
}

// Commit queues c for execution after the command buffers committed before
// it.
func (c *CommandBuffer) Commit() {
	if c.committed {
		return
	}
	c.committed = true
	if c.enc != nil && !c.enc.ended {
		c.err = errors.New("metal: command buffer committed with an open encoder")
	}
	c.dev.mu.Lock()
	defer c.dev.mu.Unlock()
	if c.dev.closed {
		c.err = errors.New("metal: Commit on a closed device")
		close(c.done)
		return
	}
	c.dev.queue <- c
}

// Wait blocks until c has run and returns the first error of its
// dispatches: a bad argument binding, barrier divergence, an out-of-bounds
// access, or another fault in kernel code. Dispatches after a failed one do
// not run.
//
// Wait on a command buffer that was not committed releases it and returns
// an error.
func (c *CommandBuffer) Wait() error {
	if !c.waited {
		c.waited = true
		c.dev.pending.release()
	}
	if !c.committed {
		return errors.New("metal: Wait on a command buffer that was not committed")
	}
	<-c.done
	return c.err
}

func (d *Device) run() {
	for c := range d.queue {
		if c.err == nil {
			for _, cmd := range c.cmds {
				if cmd.err != nil {
					c.err = cmd.err
					break
				}
				if err := d.execute(cmd); err != nil {
					c.err = err
					break
				}
			}
		}
		c.cmds = nil
		close(c.done)
	}
	d.freeWorkers()
}

// Encoder records compute dispatches into a command buffer.
type Encoder struct {
	cb    *CommandBuffer
	pipe  *Pipeline
	bind  [emuMaxBufferArgs]binding
	tgLen [emuMaxBufferArgs]int
	ended bool
	err   error
	calls int // Dispatch calls
}

// Dispatches is the number of Dispatch calls made on e.
func (e *Encoder) Dispatches() int { return e.calls }

type binding struct {
	buf    *Buffer
	offset int
	bytes  []byte
}

type dispatch struct {
	pipe            *Pipeline
	bind            [emuMaxBufferArgs]binding
	tgLen           [emuMaxBufferArgs]int
	groups, threads Size
	err             error
}

// SetPipeline sets the kernel of the following dispatches.
func (e *Encoder) SetPipeline(p *Pipeline) { e.pipe = p }

// SetBuffer binds b, from byte offset on, to [[buffer(index)]].
func (e *Encoder) SetBuffer(index int, b *Buffer, offset int) {
	if index < 0 || index >= emuMaxBufferArgs {
		e.err = fmt.Errorf("buffer index %d out of range", index)
		return
	}
	e.bind[index] = binding{buf: b, offset: offset}
}

// SetBytes binds a copy of data, at most 4 KiB as on Metal, to
// [[buffer(index)]].
func (e *Encoder) SetBytes(index int, data []byte) {
	if index < 0 || index >= emuMaxBufferArgs {
		e.err = fmt.Errorf("buffer index %d out of range", index)
		return
	}
	if len(data) > 4096 {
		e.err = fmt.Errorf("SetBytes of %d bytes at index %d: Metal allows at most 4096", len(data), index)
		return
	}
	e.bind[index] = binding{bytes: append([]byte(nil), data...)}
}

// SetThreadgroupMemory sets the length of [[threadgroup(index)]].
func (e *Encoder) SetThreadgroupMemory(index int, length int) {
	if index < 0 || index >= emuMaxBufferArgs {
		e.err = fmt.Errorf("threadgroup index %d out of range", index)
		return
	}
	e.tgLen[index] = length
}

// Dispatch runs groups threadgroups of threadsPerGroup threads each.
func (e *Encoder) Dispatch(groups, threadsPerGroup Size) {
	e.calls++
	d := &dispatch{pipe: e.pipe, bind: e.bind, tgLen: e.tgLen, groups: groups, threads: threadsPerGroup, err: e.err}
	if d.err == nil && e.ended {
		d.err = errors.New("dispatch after End")
	}
	if d.err == nil && e.pipe == nil {
		d.err = errors.New("dispatch without a pipeline")
	}
	if d.err != nil {
		name := "?"
		if e.pipe != nil {
			name = e.pipe.kernel.Name
		}
		d.err = fmt.Errorf("metal: kernel %q: %w", name, d.err)
	}
	e.cb.cmds = append(e.cb.cmds, d)
}

// End finishes encoding.
func (e *Encoder) End() { e.ended = true }

// execute runs one dispatch on the device's workers.
func (dev *Device) execute(cmd *dispatch) error {
	k := cmd.pipe.kernel
	fail := func(format string, args ...any) error {
		return fmt.Errorf("metal: kernel %q: %s", k.Name, fmt.Sprintf(format, args...))
	}
	cmd.pipe.lib.use.RLock()
	defer cmd.pipe.lib.use.RUnlock()
	if cmd.pipe.lib.handle == nil {
		return fail("its library was released")
	}
	nthreads := cmd.threads.Count()
	if cmd.threads.X < 0 || cmd.threads.Y < 0 || cmd.threads.Z < 0 || cmd.groups.X < 0 || cmd.groups.Y < 0 || cmd.groups.Z < 0 {
		return fail("negative dispatch size %v x %v", cmd.groups, cmd.threads)
	}
	if nthreads > emuMaxThreads {
		return fail("%d threads per threadgroup exceed %d", nthreads, emuMaxThreads)
	}
	ngroups := cmd.groups.Count()
	if ngroups >= 1<<32 {
		return fail("too many threadgroups")
	}

	d := (*C.emu_dispatch)(C.calloc(1, C.size_t(unsafe.Sizeof(C.emu_dispatch{}))))
	defer C.free(unsafe.Pointer(d))
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	d.entry = (*[0]byte)(cmd.pipe.entry)
	size := func(s Size) [3]C.uint32_t {
		return [3]C.uint32_t{C.uint32_t(max(s.X, 1)), C.uint32_t(max(s.Y, 1)), C.uint32_t(max(s.Z, 1))}
	}
	d.groups, d.threads = size(cmd.groups), size(cmd.threads)
	if cmd.pipe.lib.race {
		d.race = 1
		d.serial = C.uint32_t(nextSerial())
	}
	tgTotal, nbuf := 0, 0
	for _, p := range k.Params {
		switch p.Kind {
		case msl.BufferParam:
			b := cmd.bind[p.Index]
			switch {
			case b.buf != nil:
				if b.buf.base == nil {
					return fail("buffer %d (%s) was released", p.Index, p.Name)
				}
				if b.offset < 0 || b.offset > b.buf.Len() {
					return fail("offset %d outside buffer %d (%s) of %d bytes", b.offset, p.Index, p.Name, b.buf.Len())
				}
				if a := int(cmd.pipe.align[nbuf]); a > 1 && b.offset%a != 0 {
					return fail("buffer %d (%s) is bound at offset %d, not a multiple of %d, the alignment of its data (%s)",
						p.Index, p.Name, b.offset, a, p.Type)
				}
				d.buf[p.Index] = unsafe.Add(b.buf.base, b.offset)
				// Buffers the kernel can write get the race detector's shadow.
				if cmd.pipe.lib.race && b.buf.Len() > 0 && !strings.Contains(p.Type, "const") {
					sh, err := b.buf.raceShadow()
					if err != nil {
						return fail("%v", err)
					}
					w := &d.wbuf[d.nwbuf]
					w.base, w.len, w.shadow, w.index = (*C.char)(b.buf.base), C.uint64_t(b.buf.Len()), (*C.uint64_t)(sh), C.uint32_t(p.Index)
					d.nwbuf++
				}
			case b.bytes != nil:
				// Set-bytes data gets zero padding: params structs are read whole.
				m := C.calloc(1, C.size_t(len(b.bytes)+256))
				frees = append(frees, m)
				copy(unsafe.Slice((*byte)(m), len(b.bytes)), b.bytes)
				d.buf[p.Index] = m
			default:
				return fail("buffer %d (%s) is not set", p.Index, p.Name)
			}
			nbuf++
		case msl.ThreadgroupParam:
			n := cmd.tgLen[p.Index]
			if n <= 0 {
				return fail("threadgroup memory %d (%s) has no length set", p.Index, p.Name)
			}
			d.tg_len[p.Index] = C.uint32_t(n)
			tgTotal += (n + 15) &^ 15
		}
	}
	if tgTotal > 32768 {
		return fail("threadgroup memory arguments of %d bytes exceed 32768", tgTotal)
	}

	lib := cmd.pipe.lib
	nw := min(dev.nwork, ngroups)
	var (
		mu       sync.Mutex
		first    error
		wg       sync.WaitGroup
		used     []*C.emu_worker
		finished bool
	)
	// A kernel that runs too long (an endless loop) is stopped.
	timer := time.AfterFunc(watchdog(), func() {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range used {
			if !finished {
				C.emu_stop(w, d)
			}
		}
	})
	defer func() { // before d is freed
		timer.Stop()
		mu.Lock()
		finished = true
		mu.Unlock()
	}()
	work := func() {
		w := <-dev.workers
		defer func() { dev.workers <- w }()
		mu.Lock()
		used = append(used, w)
		mu.Unlock()
		var rc C.int
		if C.emu_worker_scratch(w, C.uint64_t(lib.scratch)) != 0 {
			rc = -1
		} else {
			rc = C.emu_exec(lib.run, lib.where, d, w)
		}
		if rc == 0 {
			return
		}
		err := dev.describe(k.Name, rc, w, cmd)
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	wg.Add(nw - 1)
	for i := 1; i < nw; i++ {
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
	return first
}

var serial atomic.Uint32

// nextSerial numbers dispatches for the race detector, skipping 0.
func nextSerial() uint32 {
	for {
		if s := serial.Add(1); s != 0 {
			return s
		}
	}
}

// nameArgs adds the parameter names to the "[[buffer(n)]]" and
// "[[threadgroup(n)]]" of a message from the kernel side.
func nameArgs(msg string, k msl.Kernel) string {
	for _, p := range k.Params {
		attr := ""
		switch p.Kind {
		case msl.BufferParam:
			attr = fmt.Sprintf("[[buffer(%d)]]", p.Index)
		case msl.ThreadgroupParam:
			attr = fmt.Sprintf("[[threadgroup(%d)]]", p.Index)
		default:
			continue
		}
		msg = strings.ReplaceAll(msg, attr, attr+" ("+p.Name+")")
	}
	return msg
}

// describe turns a worker's failure into an error naming the kernel, the
// thread and, for faults, the buffer.
func (dev *Device) describe(kernel string, rc C.int, w *C.emu_worker, cmd *dispatch) error {
	where := ""
	if w.have_where != 0 {
		where = fmt.Sprintf(" (thread %d,%d,%d of threadgroup %d,%d,%d)",
			w.where_thread[0], w.where_thread[1], w.where_thread[2], w.where_group[0], w.where_group[1], w.where_group[2])
	}
	switch rc {
	case -1:
		return fmt.Errorf("metal: kernel %q: out of memory for the emulator's scratch space", kernel)
	case 1:
		return fmt.Errorf("metal: kernel %q: %s%s", kernel, nameArgs(C.GoString(&w.msg[0]), cmd.pipe.kernel), where)
	}
	addr := uintptr(w.fault_addr)
	sig := unix.SignalName(unix.Signal(w.signo))
	if w.signo == C.int(unix.SIGXCPU) {
		return fmt.Errorf("metal: kernel %q: still running after %v, stopped (the limit is $SEAL_TTT_EMU_TIMEOUT)%s", kernel, watchdog(), where)
	}
	if w.signo == C.int(unix.SIGFPE) {
		return fmt.Errorf("metal: kernel %q: arithmetic fault (%s, integer division by zero?)%s", kernel, sig, where)
	}
	if C.emu_in_stack_guard(w, C.uintptr_t(addr)) != 0 {
		return fmt.Errorf("metal: kernel %q: thread stack overflow (%d bytes per thread)%s", kernel, emuStackSize, where)
	}
	for i, b := range cmd.bind {
		if b.buf == nil || b.buf.guard == 0 {
			continue
		}
		if addr >= b.buf.guard && addr < b.buf.guard+uintptr(pageSize) {
			name := ""
			for _, p := range cmd.pipe.kernel.Params {
				if p.Kind == msl.BufferParam && p.Index == i {
					name = " (" + p.Name + ")"
				}
			}
			return fmt.Errorf("metal: kernel %q: out-of-bounds access to buffer %d%s: byte %d of a %d-byte buffer bound at offset %d%s",
				kernel, i, name, addr-uintptr(b.buf.base), b.buf.Len(), b.offset, where)
		}
	}
	if addr == 0 {
		// x86 reports a general-protection fault, such as an aligned vector
		// load from a misaligned address, without an address.
		return fmt.Errorf("metal: kernel %q: invalid memory access (a null pointer, or a misaligned vector access) (%s)%s", kernel, strings.TrimPrefix(sig, "SIG"), where)
	}
	return fmt.Errorf("metal: kernel %q: invalid memory access at %#x (%s)%s", kernel, addr, strings.TrimPrefix(sig, "SIG"), where)
}
