// Package kernels holds the project's Metal compute kernels: their MSL
// source (the .metal files, embedded), and Go launchers that encode them
// onto a metal.Encoder. Every kernel has a Go reference, the CPU backend's op
// in package cpu; package kernels/check runs each kernel against it, and the
// Metal backend (package gpu) calls each launcher for the nn.Backend op of
// the same name.
//
// The launchers follow the argument conventions of the cpu ops they mirror:
// the same sizes, the same row-major layouts, the same flags.
//
// Adding a kernel: its MSL in a .metal file of its op family (inside the
// subset in metal/msl/SUBSET.md; `go test ./kernels/` runs the strict check
// over every file), its host names in Names, a launcher that validates its
// arguments, and its cases against the nn reference in kernels/check, which
// the tests and `seal-ttt doctor` both run.
package kernels

import (
	"embed"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/metal"
)

//go:embed *.metal
var sources embed.FS

// commonFile comes first in the library source: functions the other files use.
const commonFile = "common.metal"

// Files returns the kernel source files by name, common.metal first, then
// the others in name order.
func Files() []string {
	names, err := fs.Glob(sources, "*.metal")
	if err != nil {
		panic(err) // the pattern is constant and valid
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == commonFile:
			return -1
		case b == commonFile:
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}

// FileSource returns the source of one kernel file.
func FileSource(name string) (string, error) {
	b, err := sources.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("kernels: %w", err)
	}
	return string(b), nil
}

// Source returns the whole library: every file, each preceded by a #line
// directive so compile errors name the file.
func Source() string {
	return source(nil)
}

// source builds the library source, taking a file's text from replace
// where it has one.
func source(replace map[string]string) string {
	var b strings.Builder
	for _, name := range Files() {
		text, ok := replace[name]
		if !ok {
			var err error
			if text, err = FileSource(name); err != nil {
				panic(err) // Files lists only embedded files
			}
		}
		fmt.Fprintf(&b, "#line 1 %q\n%s\n", name, text)
	}
	return b.String()
}

// weightType reports whether t is a weight type the kernels take, and gives
// its suffix in kernel names: f32, f16 or bf16.
func weightType(t hf.DType) (string, bool) {
	switch t {
	case hf.F32:
		return "f32", true
	case hf.F16:
		return "f16", true
	case hf.BF16:
		return "bf16", true
	}
	return "", false
}

// weightTypes are the weight types, in the order of kernel instantiations.
var weightTypes = []hf.DType{hf.F32, hf.F16, hf.BF16}

// Library is the compiled kernel library with a pipeline for every kernel.
type Library struct {
	lib   *metal.Library
	pipes map[string]*metal.Pipeline
}

// Load compiles the kernel library for dev and makes every pipeline.
func Load(dev *metal.Device, opts metal.CompileOptions) (*Library, error) {
	return load(dev, Source(), opts)
}

func load(dev *metal.Device, src string, opts metal.CompileOptions) (*Library, error) {
	lib, err := dev.NewLibrary(src, opts)
	if err != nil {
		return nil, fmt.Errorf("kernels: %w", err)
	}
	l := &Library{lib: lib, pipes: map[string]*metal.Pipeline{}}
	for _, name := range Names() {
		p, err := lib.Pipeline(name)
		if err != nil {
			lib.Release()
			return nil, fmt.Errorf("kernels: %w", err)
		}
		l.pipes[name] = p
	}
	return l, nil
}

// Names lists every kernel function of the library.
func Names() []string {
	names := []string{"matmul_reduce"}
	for _, t := range weightTypes {
		suffix, _ := weightType(t)
		for _, tile := range gemmTiles {
			names = append(names, "matmul_"+tile.name+"_"+suffix)
		}
		for _, family := range []string{"matvec_t", "matvec_n", "rmsnorm", "rmsnorm_backward", "add_bias", "embed"} {
			names = append(names, family+"_"+suffix)
		}
	}
	for _, family := range []string{"attn_fwd", "attn_decode", "attn_decode_merge", "attn_bwd_dq", "attn_bwd_dkv"} {
		for _, d := range attnHeadDims {
			names = append(names, family+"_d"+strconv.Itoa(d))
		}
	}
	names = append(names, "add", "copy_u32", "fill_f32", "silu_mul", "silu_mul_backward", "dropout", "set_rows", "rope")
	names = append(names, "adamw", "cross_entropy", "reduce_sum", "reduce_sum_squares", "reduce_final", "sample")
	return names
}

// threads returns want threads per threadgroup for kernel name, or fewer:
// the most its pipeline allows (which can be under 1024 for a kernel that
// uses many registers), rounded down to whole SIMD groups. Kernels that
// call it work with any multiple of 32 threads.
func (l *Library) threads(name string, want int) int {
	return min(want, l.pipes[name].MaxTotalThreadsPerThreadgroup()&^31)
}

// Release frees the library.
func (l *Library) Release() { l.lib.Release() }

// params packs a kernel's parameter struct: 32-bit fields, little-endian,
// as MSL lays out uint and float members.
func params(fields ...any) []byte {
	b := make([]byte, 0, 4*len(fields))
	for _, f := range fields {
		switch v := f.(type) {
		case int:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case bool:
			u := uint32(0)
			if v {
				u = 1
			}
			b = binary.LittleEndian.AppendUint32(b, u)
		case float32:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		default:
			panic(fmt.Sprintf("kernels: params field of type %T", f))
		}
	}
	return b
}

// Buf is a kernel argument: the bytes of Buffer from byte offset Off on.
// A tensor that is a slice of a larger allocation is the allocation and the
// slice's offset.
//
// Elementwise and row kernels load four elements at a time where every
// tensor is 16-byte aligned: its offset a multiple of 16 in a buffer whose
// length is one too (the emulator aligns a buffer's start only to the
// largest power of two up to 16 that divides its length).
type Buf struct {
	Buffer *metal.Buffer
	Off    int
}

// Whole returns a Buf for all of b.
func Whole(b *metal.Buffer) Buf { return Buf{Buffer: b} }

// need checks that buffer b holds at least n bytes from its offset on, and
// that the offset keeps its elements aligned (4 bytes, as Metal requires of
// device buffer offsets and as float and uint loads need).
func need(kernel, name string, b Buf, n int) error {
	if b.Buffer == nil {
		return fmt.Errorf("kernels: %s: %s is nil", kernel, name)
	}
	if b.Off < 0 || b.Off%4 != 0 {
		return fmt.Errorf("kernels: %s: %s offset %d is not a multiple of 4", kernel, name, b.Off)
	}
	if have := b.Buffer.Len() - b.Off; have < n {
		at := ""
		if b.Off > 0 {
			at = fmt.Sprintf(" after offset %d", b.Off)
		}
		return fmt.Errorf("kernels: %s: %s holds %d bytes%s, needs %d", kernel, name, have, at, n)
	}
	return nil
}

// bufArg is a launcher's buffer argument: its name in errors, and the bytes
// it must hold.
type bufArg struct {
	name string
	b    Buf
	n    int
}

// needAll checks every argument with need.
func needAll(kernel string, args []bufArg) error {
	for _, a := range args {
		if err := need(kernel, a.name, a.b, a.n); err != nil {
			return err
		}
	}
	return nil
}

// bind binds b to [[buffer(index)]].
func bind(e *metal.Encoder, index int, b Buf) { e.SetBuffer(index, b.Buffer, b.Off) }
