//go:build darwin

package metal

import (
	"errors"
	"fmt"
	"sync"
)

// Library is compiled MSL source. Its methods are safe for concurrent use,
// except Release.
type Library struct {
	device  *Device
	library id // owned MTLLibrary

	mu        sync.Mutex
	pipelines map[string]*Pipeline
}

// NewLibrary compiles MSL source. The language version is MSL 3.1 on macOS
// 14 and later (bfloat, among others) and the newest the OS knows before
// that. A compile error carries the compiler's messages.
func (d *Device) NewLibrary(source string, opts CompileOptions) (*Library, error) {
	if d.device == 0 {
		return nil, errClosed
	}
	var lib id
	var err error
	withPool(func() {
		options := newCompileOptions(opts) // owned
		defer release(options)
		src := newString(source) // owned
		if src == 0 {
			err = errors.New("metal: library source is not valid UTF-8")
			return
		}
		defer release(src)
		var nserr id // out-parameter, autoreleased when set
		lib = msgSendErr2(d.device, selNewLibrary, src, options, &nserr)
		if lib == 0 { // nserr may also hold warnings when compiling succeeds
			err = nsError("compiling library", nserr)
		}
	})
	if err != nil {
		return nil, err
	}
	return &Library{device: d, library: lib, pipelines: make(map[string]*Pipeline)}, nil
}

// newCompileOptions returns an owned MTLCompileOptions for opts.
func newCompileOptions(opts CompileOptions) id {
	options := msgSend(msgSend(id(clsCompileOptions), selAlloc), selInit)
	if haveMSL31 {
		msgSendUintArg(options, selSetLanguageVersion, languageVersion3_1)
	}
	// mathMode and mathFloatingPointFunctions replace fastMathEnabled from
	// macOS 15; fastMathEnabled defaults to true, so it is always set.
	if respondsTo(options, selSetMathMode) {
		mode, funcs := uint(mathModeSafe), uint(mathFuncsPrecise)
		if opts.FastMath {
			mode, funcs = mathModeFast, mathFuncsFast
		}
		msgSendUintArg(options, selSetMathMode, mode)
		msgSendUintArg(options, selSetMathFuncs, funcs)
	} else {
		msgSendBoolArg(options, selSetFastMath, opts.FastMath)
	}
	return options
}

// Pipeline returns the compute pipeline for the kernel function named
// function, creating it on first use.
func (l *Library) Pipeline(function string) (*Pipeline, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.pipelines[function]; ok {
		return p, nil
	}
	var p *Pipeline
	var err error
	withPool(func() { p, err = l.newPipeline(function) })
	if err != nil {
		return nil, err
	}
	l.pipelines[function] = p
	return p, nil
}

func (l *Library) newPipeline(function string) (*Pipeline, error) {
	if l.library == 0 {
		return nil, errors.New("metal: library used after Release")
	}
	name := newString(function) // owned
	if name == 0 {
		return nil, fmt.Errorf("metal: function name %q is not valid UTF-8", function)
	}
	defer release(name)
	fn := msgSendID(l.library, selNewFunction, name) // owned
	if fn == 0 {
		return nil, fmt.Errorf("metal: no function %q in the library", function)
	}
	defer release(fn)
	// The error and the reflection are autoreleased when set; the state is owned.
	var nserr, reflection id
	state := msgSendReflect(l.device.device, selNewPipelineReflect, fn, pipelineReflection, &reflection, &nserr)
	if state == 0 {
		return nil, nsError(fmt.Sprintf("pipeline for %q", function), nserr)
	}
	p := &Pipeline{
		name:           function,
		state:          state,
		maxThreads:     int(msgSendUint(state, selMaxTotalThreads)),
		executionWidth: int(msgSendUint(state, selExecutionWidth)),
		staticTG:       int(msgSendUint(state, selStaticThreadgroupMemory)),
	}
	p.reflect(reflection)
	return p, nil
}

// reflect reads, from the pipeline's reflection, the alignment each
// [[buffer(n)]] argument's data needs and which [[threadgroup(n)]]
// arguments the kernel has. It uses the bindings of macOS 13 and later,
// else the older arguments; both answer type and index and, for buffers,
// bufferAlignment.
func (p *Pipeline) reflect(reflection id) {
	if reflection == 0 {
		return
	}
	list := selArguments
	if respondsTo(reflection, selBindings) {
		list = selBindings
	}
	args := msgSend(reflection, list)
	if args == 0 {
		return
	}
	for i := range msgSendUint(args, selCount) {
		a := msgSendUintArg(args, selObjectAtIndex, i)
		index := msgSendUint(a, selIndex)
		if index >= maxBindings {
			continue
		}
		switch msgSendUint(a, selType) {
		case bindingTypeBuffer:
			p.align[index] = int(msgSendUint(a, selBufferAlignment))
		case bindingTypeThreadgroup:
			p.tgArg[index] = true
		}
	}
}

// Release frees the library and every pipeline made from it. Command
// buffers already committed keep what they use alive until they complete.
// Releasing twice does nothing.
func (l *Library) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	withPool(func() {
		for name, p := range l.pipelines {
			release(p.state)
			p.state = 0
			delete(l.pipelines, name)
		}
		release(l.library)
	})
	l.library = 0
}

// Pipeline is a compute pipeline: one kernel function, ready to dispatch. It
// belongs to its [Library] and lives until the library is released.
type Pipeline struct {
	name           string
	state          id // owned MTLComputePipelineState, released by Library.Release
	maxThreads     int
	executionWidth int
	staticTG       int               // bytes of threadgroup memory the kernel declares
	align          [maxBindings]int  // alignment of each [[buffer(n)]]'s data, 0 if unknown
	tgArg          [maxBindings]bool // which [[threadgroup(n)]] arguments the kernel has
}

// MaxTotalThreadsPerThreadgroup is the most threads one threadgroup of this
// pipeline may have; it depends on the kernel's register and memory use.
func (p *Pipeline) MaxTotalThreadsPerThreadgroup() int { return p.maxThreads }

// ThreadExecutionWidth is the SIMD-group width, 32 on Apple GPUs.
func (p *Pipeline) ThreadExecutionWidth() int { return p.executionWidth }
