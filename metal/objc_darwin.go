//go:build darwin

package metal

// The Objective-C layer: the frameworks, one typed objc_msgSend per C
// signature, the selectors and classes, and the ownership helpers.
//
// # Ownership
//
// A selector whose name begins with alloc, new, copy or mutableCopy (and the
// C functions MTLCreateSystemDefaultDevice and MTLCopyAllDevices, by the
// Create/Copy rule) returns an object the caller owns: this package stores it
// and sends it release exactly once, in the Release or Close method of the Go
// value holding it. Every other selector returns an object the caller does
// not own, usually autoreleased. Such an object is used only between
// objc_autoreleasePoolPush and objc_autoreleasePoolPop on one locked OS
// thread (see withPool) and, if it must outlive the pool (a command buffer, a
// compute encoder), it is sent retain before the pool is popped and released
// like an owned one. NSError and NSString results are read into Go strings
// inside the pool and never kept.
//
// # Calling convention
//
// Every message send goes through a func variable of the exact C type of the
// method, bound to objc_msgSend once by purego.RegisterFunc in load. Nothing
// on the dispatch path registers a function or works out a signature; purego
// only places each call's arguments in registers (by reflection, inside the
// function it made).
//
// MTLSize (three NSUIntegers, 24 bytes) is passed and returned by value
// through purego's struct support, which follows the Apple ABIs: on arm64 a
// composite larger than 16 bytes is copied to memory and passed by pointer in
// the next integer register (AAPCS64 B.4), and returned through x8; on amd64
// (System V) it is copied onto the stack and returned through a hidden
// pointer argument, which for objc_msgSend means the objc_msgSend_stret entry
// point (arm64 has no such entry point).

import (
	"errors"
	"fmt"
	"runtime"
	"structs"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// id is an Objective-C object pointer; sel is a selector; class is a class
// object. None of them points into Go memory.
type (
	id    uintptr
	sel   uintptr
	class uintptr
)

// mtlSize is MTLSize: width, height and depth as NSUInteger.
type mtlSize struct {
	_                    structs.HostLayout
	width, height, depth uint
}

// osVersion is NSOperatingSystemVersion.
type osVersion struct {
	_                   structs.HostLayout
	major, minor, patch int
}

const (
	metalPath          = "/System/Library/Frameworks/Metal.framework/Metal"
	coreGraphicsPath   = "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"
	foundationPath     = "/System/Library/Frameworks/Foundation.framework/Foundation"
	objcPath           = "/usr/lib/libobjc.A.dylib"
	nsUTF8Encoding     = 4 // NSUTF8StringEncoding
	storageModeShared  = 0 // MTLResourceStorageModeShared, default CPU cache and hazard tracking
	statusError        = 5 // MTLCommandBufferStatusError
	languageVersion3_1 = 3<<16 | 1
	mathModeSafe       = 0 // MTLMathModeSafe
	mathModeFast       = 2 // MTLMathModeFast
	mathFuncsFast      = 0 // MTLMathFloatingPointFunctionsFast
	mathFuncsPrecise   = 1 // MTLMathFloatingPointFunctionsPrecise
	gpuFamilyApple1    = 1001
	maxAppleFamily     = 9
	// MTLPipelineOptionArgumentInfo | MTLPipelineOptionBufferTypeInfo: the
	// reflection a pipeline is made with, for the buffers' alignments.
	pipelineReflection     = 1<<0 | 1<<1
	bindingTypeBuffer      = 0 // MTLBindingTypeBuffer and MTLArgumentTypeBuffer
	bindingTypeThreadgroup = 1 // MTLBindingTypeThreadgroupMemory and MTLArgumentTypeThreadgroupMemory
)

// C functions.
var (
	mtlCreateSystemDefaultDevice func() id // owned
	mtlCopyAllDevices            func() id // owned NSArray
	objcGetClass                 func(name string) class
	selRegisterName              func(name string) sel
	autoreleasePoolPush          func() uintptr
	autoreleasePoolPop           func(pool uintptr)
)

// objc_msgSend, one variable per C signature of the methods sent. Methods
// returning void use a variant with no result or ignore the result.
var (
	msgSend          func(self id, op sel) id
	msgSendVoid      func(self id, op sel)
	msgSendUint      func(self id, op sel) uint
	msgSendPtr       func(self id, op sel) unsafe.Pointer
	msgSendID        func(self id, op sel, a id) id
	msgSendUintArg   func(self id, op sel, a uint) id
	msgSendBoolArg   func(self id, op sel, a bool)
	msgSendIsUint    func(self id, op sel, a uint) bool
	msgSendIsSel     func(self id, op sel, a sel) bool
	msgSendIsVersion func(self id, op sel, v osVersion) bool
	msgSendUint2     func(self id, op sel, a, b uint) id
	msgSendBytes     func(self id, op sel, p unsafe.Pointer, n, a uint) id
	msgSendNoCopy    func(self id, op sel, p unsafe.Pointer, n, opts uint, dealloc id) id
	msgSendBufferAt  func(self id, op sel, buf id, offset, index uint)
	msgSendErr2      func(self id, op sel, a, b id, err *id) id
	msgSendDispatch  func(self id, op sel, groups, threads mtlSize)
	msgSendSize      func(self id, op sel) mtlSize // objc_msgSend_stret on amd64
	msgSendBool      func(self id, op sel) bool
	msgSendReflect   func(self id, op sel, fn id, options uint, reflection, err *id) id
)

// Selectors and classes, bound in load.
var (
	selAlloc, selInit, selRetain, selRelease, selRespondsTo                                      sel
	selUTF8String, selInitWithBytes, selLocalizedDescription, selCount, selObjectAtIndex         sel
	selProcessInfo, selIsOSAtLeast, selName, selSupportsFamily, selMaxThreads                    sel
	selWorkingSet, selMaxBufferLength, selMaxThreadgroupMemory, selNewCommandQueue, selNewBuffer sel
	selNewBufferWithBytes, selNewBufferNoCopy, selContents, selLength, selSetLanguageVersion     sel
	selSetFastMath, selSetMathMode, selSetMathFuncs, selNewLibrary, selNewFunction               sel
	selMaxTotalThreads, selExecutionWidth, selCommandBuffer, selComputeEncoder                   sel
	selSetPipeline, selSetBuffer, selSetBytes, selSetThreadgroupMemory, selDispatch              sel
	selEndEncoding, selCommit, selWait, selStatus, selError                                      sel
	selHasUnifiedMemory, selOSVersionString, selStaticThreadgroupMemory, selNewPipelineReflect   sel
	selBindings, selArguments, selType, selIndex, selBufferAlignment                             sel

	clsNSString, clsNSProcessInfo, clsCompileOptions class
)

// selectors names every selector variable.
var selectors = map[*sel]string{
	&selAlloc:                "alloc",
	&selInit:                 "init",
	&selRetain:               "retain",
	&selRelease:              "release",
	&selRespondsTo:           "respondsToSelector:",
	&selUTF8String:           "UTF8String",
	&selInitWithBytes:        "initWithBytes:length:encoding:",
	&selLocalizedDescription: "localizedDescription",
	&selCount:                "count",
	&selObjectAtIndex:        "objectAtIndex:",
	&selProcessInfo:          "processInfo",
	&selIsOSAtLeast:          "isOperatingSystemAtLeastVersion:",
	&selName:                 "name",
	&selSupportsFamily:       "supportsFamily:",
	&selMaxThreads:           "maxThreadsPerThreadgroup",
	&selWorkingSet:           "recommendedMaxWorkingSetSize",
	&selMaxBufferLength:      "maxBufferLength",
	&selMaxThreadgroupMemory: "maxThreadgroupMemoryLength",
	&selNewCommandQueue:      "newCommandQueue",
	&selNewBuffer:            "newBufferWithLength:options:",
	&selNewBufferWithBytes:   "newBufferWithBytes:length:options:",
	&selNewBufferNoCopy:      "newBufferWithBytesNoCopy:length:options:deallocator:",
	&selContents:             "contents",
	&selLength:               "length",
	&selSetLanguageVersion:   "setLanguageVersion:",
	&selSetFastMath:          "setFastMathEnabled:",
	&selSetMathMode:          "setMathMode:",
	&selSetMathFuncs:         "setMathFloatingPointFunctions:",
	&selNewLibrary:           "newLibraryWithSource:options:error:",
	&selNewFunction:          "newFunctionWithName:",
	&selMaxTotalThreads:      "maxTotalThreadsPerThreadgroup",
	&selExecutionWidth:       "threadExecutionWidth",
	&selCommandBuffer:        "commandBuffer",
	&selComputeEncoder:       "computeCommandEncoder",
	&selSetPipeline:          "setComputePipelineState:",
	&selSetBuffer:            "setBuffer:offset:atIndex:",
	&selSetBytes:             "setBytes:length:atIndex:",
	&selSetThreadgroupMemory: "setThreadgroupMemoryLength:atIndex:",
	&selDispatch:             "dispatchThreadgroups:threadsPerThreadgroup:",
	&selEndEncoding:          "endEncoding",
	&selCommit:               "commit",
	&selWait:                 "waitUntilCompleted",
	&selStatus:               "status",
	&selError:                "error",

	&selHasUnifiedMemory:        "hasUnifiedMemory",
	&selOSVersionString:         "operatingSystemVersionString",
	&selStaticThreadgroupMemory: "staticThreadgroupMemoryLength",
	&selNewPipelineReflect:      "newComputePipelineStateWithFunction:options:reflection:error:",
	&selBindings:                "bindings",
	&selArguments:               "arguments",
	&selType:                    "type",
	&selIndex:                   "index",
	&selBufferAlignment:         "bufferAlignment",
}

var (
	loadOnce sync.Once
	errLoad  error

	// haveMSL31 reports whether the OS compiles Metal Shading Language 3.1
	// (macOS 14 and later).
	haveMSL31 bool
)

// load opens the frameworks and binds every function, selector and class,
// once. CoreGraphics is opened before Metal: without it a command-line
// process may get no device from MTLCreateSystemDefaultDevice.
func load() error {
	loadOnce.Do(func() { errLoad = bind() })
	return errLoad
}

func bind() error {
	open := func(path string) (uintptr, error) {
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			return 0, fmt.Errorf("metal: dlopen %s: %w", path, err)
		}
		return h, nil
	}
	if _, err := open(coreGraphicsPath); err != nil {
		return err
	}
	mtl, err := open(metalPath)
	if err != nil {
		return err
	}
	if _, err := open(foundationPath); err != nil {
		return err
	}
	objc, err := open(objcPath)
	if err != nil {
		return err
	}
	sym := func(lib uintptr, name string) (uintptr, error) {
		p, err := purego.Dlsym(lib, name)
		if err != nil {
			return 0, fmt.Errorf("metal: symbol %s: %w", name, err)
		}
		return p, nil
	}
	for _, f := range []struct {
		fn   any
		lib  uintptr
		name string
	}{
		{&mtlCreateSystemDefaultDevice, mtl, "MTLCreateSystemDefaultDevice"},
		{&mtlCopyAllDevices, mtl, "MTLCopyAllDevices"},
		{&objcGetClass, objc, "objc_getClass"},
		{&selRegisterName, objc, "sel_registerName"},
		{&autoreleasePoolPush, objc, "objc_autoreleasePoolPush"},
		{&autoreleasePoolPop, objc, "objc_autoreleasePoolPop"},
	} {
		p, err := sym(f.lib, f.name)
		if err != nil {
			return err
		}
		purego.RegisterFunc(f.fn, p)
	}

	send, err := sym(objc, "objc_msgSend")
	if err != nil {
		return err
	}
	for _, fn := range []any{
		&msgSend, &msgSendVoid, &msgSendUint, &msgSendPtr, &msgSendID, &msgSendUintArg,
		&msgSendBoolArg, &msgSendIsUint, &msgSendIsSel, &msgSendIsVersion, &msgSendUint2,
		&msgSendBytes, &msgSendNoCopy, &msgSendBufferAt, &msgSendErr2,
		&msgSendDispatch, &msgSendBool, &msgSendReflect,
	} {
		purego.RegisterFunc(fn, send)
	}
	sendSize := send
	if runtime.GOARCH == "amd64" {
		if sendSize, err = sym(objc, "objc_msgSend_stret"); err != nil {
			return err
		}
	}
	purego.RegisterFunc(&msgSendSize, sendSize)

	for s, name := range selectors {
		*s = selRegisterName(name)
	}
	for _, c := range []struct {
		c    *class
		name string
	}{
		{&clsNSString, "NSString"},
		{&clsNSProcessInfo, "NSProcessInfo"},
		{&clsCompileOptions, "MTLCompileOptions"},
	} {
		if *c.c = objcGetClass(c.name); *c.c == 0 {
			return fmt.Errorf("metal: no Objective-C class %s", c.name)
		}
	}
	haveMSL31 = osAtLeast(14, 0)
	return nil
}

// withPool runs f inside an autorelease pool on one locked OS thread: a pool
// must be popped on the thread that pushed it, and objects autoreleased by f
// are freed when it is popped.
func withPool(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pool := autoreleasePoolPush()
	defer autoreleasePoolPop(pool)
	f()
}

// retain takes ownership of an object the caller does not own (+1).
func retain(obj id) id {
	if obj != 0 {
		msgSend(obj, selRetain)
	}
	return obj
}

// release gives up ownership of an owned object (-1).
func release(obj id) {
	if obj != 0 {
		msgSendVoid(obj, selRelease)
	}
}

// newString returns an owned NSString holding a copy of s, or nil if s is
// not valid UTF-8.
func newString(s string) id {
	str := msgSend(id(clsNSString), selAlloc)
	return msgSendBytes(str, selInitWithBytes, unsafe.Pointer(unsafe.StringData(s)), uint(len(s)), nsUTF8Encoding)
}

// goString copies an NSString into Go. It must run inside withPool: the
// UTF-8 bytes belong to an autoreleased object.
func goString(str id) string {
	if str == 0 {
		return ""
	}
	p := msgSendPtr(str, selUTF8String)
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// nsError turns an NSError (not owned) into a Go error describing what
// failed. It must run inside withPool.
func nsError(what string, err id) error {
	if err == 0 {
		return errors.New("metal: " + what + ": failed without an error description")
	}
	return errors.New("metal: " + what + ": " + goString(msgSend(err, selLocalizedDescription)))
}

// osAtLeast reports whether the running macOS is at least major.minor.
func osAtLeast(major, minor int) bool {
	var ok bool
	withPool(func() {
		info := msgSend(id(clsNSProcessInfo), selProcessInfo)
		ok = msgSendIsVersion(info, selIsOSAtLeast, osVersion{major: major, minor: minor})
	})
	return ok
}

// respondsTo reports whether obj implements the method op.
func respondsTo(obj id, op sel) bool {
	return msgSendIsSel(obj, selRespondsTo, op)
}
