//go:build darwin

package metal

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// Device is a Metal GPU and the command queue this package submits to it.
// Its methods are safe for concurrent use; Close must not run concurrently
// with anything else.
type Device struct {
	device id // owned MTLDevice
	queue  id // owned MTLCommandQueue

	name                 string
	family               int
	maxThreads           int
	workingSet           uint64
	maxBufferLength      int
	maxThreadgroupMemory int
	unifiedMemory        bool
	osVersion            string

	pending pendingCount
}

// Open returns the system default GPU. If Metal names no default device
// (some command-line contexts), it takes the first of all devices.
func Open() (*Device, error) {
	if err := load(); err != nil {
		return nil, err
	}
	var d *Device
	var err error
	withPool(func() { d, err = open() })
	return d, err
}

func open() (*Device, error) {
	dev := mtlCreateSystemDefaultDevice() // owned
	if dev == 0 {
		all := mtlCopyAllDevices() // owned NSArray
		if all != 0 && msgSendUint(all, selCount) > 0 {
			dev = retain(msgSendUintArg(all, selObjectAtIndex, 0))
		}
		release(all)
	}
	if dev == 0 {
		return nil, errors.New("metal: no Metal device")
	}
	queue := msgSend(dev, selNewCommandQueue) // owned
	if queue == 0 {
		release(dev)
		return nil, errors.New("metal: cannot create a command queue")
	}
	threads := msgSendSize(dev, selMaxThreads)
	info := msgSend(id(clsNSProcessInfo), selProcessInfo)
	return &Device{
		unifiedMemory:        respondsTo(dev, selHasUnifiedMemory) && msgSendBool(dev, selHasUnifiedMemory),
		osVersion:            "macOS " + strings.TrimPrefix(goString(msgSend(info, selOSVersionString)), "Version "),
		device:               dev,
		queue:                queue,
		name:                 goString(msgSend(dev, selName)),
		family:               appleFamily(dev),
		maxThreads:           int(threads.width),
		workingSet:           uint64(msgSendUint(dev, selWorkingSet)),
		maxBufferLength:      int(msgSendUint(dev, selMaxBufferLength)),
		maxThreadgroupMemory: int(msgSendUint(dev, selMaxThreadgroupMemory)),
	}, nil
}

// appleFamily returns the highest MTLGPUFamilyApple<n> dev supports, or 0
// for a GPU of no Apple family (an Intel Mac's).
func appleFamily(dev id) int {
	for f := maxAppleFamily; f >= 1; f-- {
		if msgSendIsUint(dev, selSupportsFamily, uint(gpuFamilyApple1+f-1)) {
			return f
		}
	}
	return 0
}

// Name is the GPU's name, such as "Apple M2 Pro".
func (d *Device) Name() string { return d.name }

// Family is the highest Apple GPU family the device supports (7 for M1, 8
// for M2, 9 for M3 and M4), or 0 for a GPU outside the Apple families.
// Kernels using simdgroup matrices need family 7 or later.
func (d *Device) Family() int { return d.family }

// MaxThreadsPerThreadgroup is the largest threadgroup width the device
// allows. A pipeline may allow fewer threads in total; see
// [Pipeline.MaxTotalThreadsPerThreadgroup].
func (d *Device) MaxThreadsPerThreadgroup() int { return d.maxThreads }

// RecommendedWorkingSet is the number of bytes of buffers the device can use
// without hurting performance, Metal's recommendedMaxWorkingSetSize.
func (d *Device) RecommendedWorkingSet() uint64 { return d.workingSet }

// UnifiedMemory reports whether the CPU and the GPU share memory (every
// Apple silicon Mac).
func (d *Device) UnifiedMemory() bool { return d.unifiedMemory }

// OSVersion is the operating system's version, such as
// "macOS 14.5 (Build 23F79)".
func (d *Device) OSVersion() string { return d.osVersion }

// LanguageVersion is the Metal Shading Language version libraries are
// compiled with.
func (d *Device) LanguageVersion() string {
	if haveMSL31 {
		return "3.1"
	}
	return "the newest before 3.1 (macOS 13 or older)"
}

// PendingCommandBuffers is the number of command buffers made and not yet
// waited for.
func (d *Device) PendingCommandBuffers() int { return d.pending.count() }

// Close releases the device. Buffers, libraries and command buffers made
// from it must be released or waited for first. Closing twice does nothing.
func (d *Device) Close() {
	withPool(func() {
		release(d.queue)
		release(d.device)
	})
	d.queue, d.device = 0, 0
}

// Buffer is GPU memory in shared storage: the CPU and the GPU see the same
// bytes. It is not safe to release a buffer concurrently with its use.
type Buffer struct {
	buffer id // owned MTLBuffer
	bytes  []byte
}

// NewBuffer returns a zeroed buffer of length bytes.
func (d *Device) NewBuffer(length int) (*Buffer, error) {
	if err := d.checkLength(length); err != nil {
		return nil, err
	}
	// newBufferWithLength:options: fills the new buffer with zeros.
	return d.wrap(length, func() id { return msgSendUint2(d.device, selNewBuffer, uint(length), storageModeShared) })
}

// NewBufferFrom returns a buffer holding a copy of b.
func (d *Device) NewBufferFrom(b []byte) (*Buffer, error) {
	if err := d.checkLength(len(b)); err != nil {
		return nil, err
	}
	return d.wrap(len(b), func() id {
		return msgSendBytes(d.device, selNewBufferWithBytes, unsafe.Pointer(unsafe.SliceData(b)), uint(len(b)), storageModeShared)
	})
}

// NewBufferNoCopy returns a buffer that uses mem itself as its storage, so
// the GPU reads the very pages of, for example, a memory-mapped weights
// file. mem must start on a page boundary, its length must be a multiple of
// the page size, and it must not be Go heap memory: the caller keeps it
// mapped and unchanged in size until the buffer is released and every
// command buffer using it has completed. Metal is given no deallocator, so
// Release never frees or unmaps mem.
func (d *Device) NewBufferNoCopy(mem []byte) (*Buffer, error) {
	if err := d.checkLength(len(mem)); err != nil {
		return nil, err
	}
	page := os.Getpagesize()
	p := unsafe.Pointer(unsafe.SliceData(mem))
	if uintptr(p)%uintptr(page) != 0 || len(mem)%page != 0 {
		return nil, fmt.Errorf("metal: no-copy buffer of %d bytes at %p is not page-aligned (page size %d)", len(mem), p, page)
	}
	return d.wrap(len(mem), func() id { return msgSendNoCopy(d.device, selNewBufferNoCopy, p, uint(len(mem)), storageModeShared, 0) })
}

// errClosed is returned by a Device's methods after Close.
var errClosed = errors.New("metal: device used after Close")

func (d *Device) checkLength(length int) error {
	if d.device == 0 {
		return errClosed
	}
	if length <= 0 || length > d.maxBufferLength {
		return fmt.Errorf("metal: buffer length %d out of range [1, %d]", length, d.maxBufferLength)
	}
	return nil
}

// wrap calls create, which returns a new owned MTLBuffer of length bytes or
// nil, inside an autorelease pool (Metal may autorelease objects of its own
// while allocating), and takes ownership of the buffer.
func (d *Device) wrap(length int, create func() id) (*Buffer, error) {
	var buf id
	var contents unsafe.Pointer
	withPool(func() {
		if buf = create(); buf != 0 {
			contents = msgSendPtr(buf, selContents)
		}
	})
	if buf == 0 {
		return nil, fmt.Errorf("metal: cannot allocate a buffer of %d bytes", length)
	}
	return &Buffer{buffer: buf, bytes: unsafe.Slice((*byte)(contents), length)}, nil
}

// Len is the buffer's length in bytes.
func (b *Buffer) Len() int { return len(b.bytes) }

// Bytes returns the buffer's contents, valid until Release. The CPU may read
// or write them only while no command buffer using the buffer is running.
func (b *Buffer) Bytes() []byte { return b.bytes }

// Release frees the buffer. Command buffers already committed keep the
// memory alive until they complete. Releasing twice does nothing.
func (b *Buffer) Release() {
	withPool(func() { release(b.buffer) })
	b.buffer, b.bytes = 0, nil
}
