//go:build darwin

// These tests drive a real Metal GPU, so they run only on a Mac. Elsewhere
// `GOOS=darwin go vet ./metal/` type-checks them; the emulator's tests cover
// the same API on Linux.

package metal

import (
	"encoding/binary"
	"math"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

func openDevice(t *testing.T) *Device {
	t.Helper()
	d, err := Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

func compile(t *testing.T, d *Device, source string) *Library {
	t.Helper()
	lib, err := d.NewLibrary(source, CompileOptions{})
	if err != nil {
		t.Fatalf("NewLibrary: %v", err)
	}
	t.Cleanup(lib.Release)
	return lib
}

func floatBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesFloats(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func TestDevice(t *testing.T) {
	d := openDevice(t)
	t.Logf("%s: family Apple%d, %d threads per threadgroup, working set %d MiB",
		d.Name(), d.Family(), d.MaxThreadsPerThreadgroup(), d.RecommendedWorkingSet()>>20)
	if d.Name() == "" {
		t.Error("empty device name")
	}
	// Every Mac GPU Metal supports allows 1024 threads per threadgroup width.
	if got := d.MaxThreadsPerThreadgroup(); got < 1024 {
		t.Errorf("MaxThreadsPerThreadgroup = %d, want at least 1024", got)
	}
	if d.RecommendedWorkingSet() == 0 {
		t.Error("RecommendedWorkingSet = 0")
	}
	// Every Apple silicon GPU (M1 onwards) is Apple7 or later; Intel Macs
	// have no Apple family.
	if runtime.GOARCH == "arm64" && d.Family() < 7 {
		t.Errorf("Family = %d on Apple silicon, want at least 7", d.Family())
	}
	if runtime.GOARCH == "arm64" && !d.UnifiedMemory() {
		t.Error("UnifiedMemory = false on Apple silicon")
	}
	if v := d.OSVersion(); !strings.HasPrefix(v, "macOS ") || len(v) < len("macOS 1") {
		t.Errorf("OSVersion = %q", v)
	}
	t.Logf("%s, MSL %s", d.OSVersion(), d.LanguageVersion())
}

const addSource = `
#include <metal_stdlib>
using namespace metal;

struct AddParams { uint n; float scale; };

kernel void add(device const float* a [[buffer(0)]],
                device const float* b [[buffer(1)]],
                device float* out [[buffer(2)]],
                constant AddParams& p [[buffer(3)]],
                uint i [[thread_position_in_grid]]) {
    if (i < p.n) out[i] = a[i] + p.scale * b[i];
}

// Each threadgroup writes the sum of its slice of in to sums[group].
kernel void group_sum(device const float* in [[buffer(0)]],
                      device float* sums [[buffer(1)]],
                      threadgroup float* scratch [[threadgroup(0)]],
                      uint i [[thread_position_in_grid]],
                      uint t [[thread_index_in_threadgroup]],
                      uint n [[threads_per_threadgroup]],
                      uint group [[threadgroup_position_in_grid]]) {
    scratch[t] = in[i];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = n / 2; s > 0; s /= 2) {
        if (t < s) scratch[t] += scratch[t + s];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (t == 0) sums[group] = scratch[0];
}
`

func TestAddKernel(t *testing.T) {
	d := openDevice(t)
	add, err := compile(t, d, addSource).Pipeline("add")
	if err != nil {
		t.Fatal(err)
	}
	if w := add.ThreadExecutionWidth(); w != 32 && runtime.GOARCH == "arm64" {
		t.Errorf("ThreadExecutionWidth = %d, want 32", w)
	}
	for _, tc := range []struct{ n, threads, offset int }{
		{1, 1, 0},
		{7, 32, 0},
		{64, 64, 16},
		{1000, 256, 4},
		{4097, 1024, 0},
	} {
		// Small integers, so every sum is exact and compared exactly.
		a := make([]float32, tc.offset/4+tc.n)
		b := make([]float32, tc.n)
		for i := range b {
			a[tc.offset/4+i] = float32(i % 251)
			b[i] = float32(3 * (i % 17))
		}
		bufA, err := d.NewBufferFrom(floatBytes(a))
		if err != nil {
			t.Fatal(err)
		}
		bufB, err := d.NewBufferFrom(floatBytes(b))
		if err != nil {
			t.Fatal(err)
		}
		out, err := d.NewBuffer(4 * tc.n)
		if err != nil {
			t.Fatal(err)
		}
		params := make([]byte, 8)
		binary.LittleEndian.PutUint32(params, uint32(tc.n))
		binary.LittleEndian.PutUint32(params[4:], math.Float32bits(2))

		cb, err := d.NewCommandBuffer()
		if err != nil {
			t.Fatal(err)
		}
		e := cb.Encoder()
		e.SetPipeline(add)
		e.SetBuffer(0, bufA, tc.offset)
		e.SetBuffer(1, bufB, 0)
		e.SetBuffer(2, out, 0)
		e.SetBytes(3, params)
		e.Dispatch(Size{X: (tc.n + tc.threads - 1) / tc.threads}, Size{X: tc.threads})
		e.End()
		cb.Commit()
		if err := cb.Wait(); err != nil {
			t.Fatalf("n=%d: Wait: %v", tc.n, err)
		}
		for i, got := range bytesFloats(out.Bytes()) {
			if want := a[tc.offset/4+i] + 2*b[i]; got != want {
				t.Fatalf("n=%d offset=%d: out[%d] = %v, want %v", tc.n, tc.offset, i, got, want)
			}
		}
		bufA.Release()
		bufB.Release()
		out.Release()
	}
}

func TestThreadgroupMemoryKernel(t *testing.T) {
	d := openDevice(t)
	sum, err := compile(t, d, addSource).Pipeline("group_sum")
	if err != nil {
		t.Fatal(err)
	}
	const groups, threads = 5, 128
	in := make([]float32, groups*threads)
	for i := range in {
		in[i] = float32(i)
	}
	bufIn, err := d.NewBufferFrom(floatBytes(in))
	if err != nil {
		t.Fatal(err)
	}
	defer bufIn.Release()
	sums, err := d.NewBuffer(4 * groups)
	if err != nil {
		t.Fatal(err)
	}
	defer sums.Release()

	cb, err := d.NewCommandBuffer()
	if err != nil {
		t.Fatal(err)
	}
	e := cb.Encoder()
	e.SetPipeline(sum)
	e.SetBuffer(0, bufIn, 0)
	e.SetBuffer(1, sums, 0)
	e.SetThreadgroupMemory(0, 4*threads)
	e.Dispatch(Size{X: groups}, Size{X: threads})
	e.End()
	cb.Commit()
	if err := cb.Wait(); err != nil {
		t.Fatal(err)
	}
	for g, got := range bytesFloats(sums.Bytes()) {
		// The sum of the integers g*threads .. (g+1)*threads-1, exact in float32.
		want := float32(threads*(g*threads) + threads*(threads-1)/2)
		if got != want {
			t.Errorf("group %d: sum = %v, want %v", g, got, want)
		}
	}
}

func TestCompileError(t *testing.T) {
	d := openDevice(t)
	for _, opts := range []CompileOptions{{FastMath: false}, {FastMath: true}} {
		_, err := d.NewLibrary("kernel void k(device float* x [[buffer(0)]]) { x[0] = not_declared; }", opts)
		if err == nil || !strings.Contains(err.Error(), "not_declared") {
			t.Errorf("FastMath=%v: NewLibrary error = %v, want the compiler's message about not_declared", opts.FastMath, err)
		}
	}
	if _, err := compile(t, d, addSource).Pipeline("missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Pipeline(missing) error = %v, want one naming the function", err)
	}
}

func TestBuffers(t *testing.T) {
	d := openDevice(t)
	b, err := d.NewBuffer(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if b.Len() != 1<<20 || len(b.Bytes()) != 1<<20 {
		t.Fatalf("Len = %d, len(Bytes) = %d, want %d", b.Len(), len(b.Bytes()), 1<<20)
	}
	for i, x := range b.Bytes() {
		if x != 0 {
			t.Fatalf("new buffer byte %d = %d, want 0", i, x)
		}
	}
	for _, n := range []int{0, -1} {
		if _, err := d.NewBuffer(n); err == nil {
			t.Errorf("NewBuffer(%d) succeeded", n)
		}
	}
	if _, err := d.NewBufferFrom(nil); err == nil {
		t.Error("NewBufferFrom(nil) succeeded")
	}
}

func TestNewBufferNoCopy(t *testing.T) {
	d := openDevice(t)
	page := os.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)

	b, err := d.NewBufferNoCopy(mem)
	if err != nil {
		t.Fatal(err)
	}
	mem[page+1] = 42
	if got := b.Bytes()[page+1]; got != 42 || unsafe.SliceData(b.Bytes()) != unsafe.SliceData(mem) {
		t.Errorf("buffer does not share the mapped memory (byte = %d)", got)
	}
	b.Release()

	for name, m := range map[string][]byte{"unaligned start": mem[1 : page+1], "partial page": mem[:page+1]} {
		if b, err := d.NewBufferNoCopy(m); err == nil {
			b.Release()
			t.Errorf("%s: NewBufferNoCopy succeeded", name)
		}
	}
}

func TestEncodingMistakes(t *testing.T) {
	d := openDevice(t)
	add, err := compile(t, d, addSource).Pipeline("add")
	if err != nil {
		t.Fatal(err)
	}
	buf, err := d.NewBuffer(64)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Release()
	for _, tc := range []struct {
		name   string
		encode func(e *Encoder)
		want   []string // substrings of the error
	}{
		{"dispatch without pipeline", func(e *Encoder) { e.Dispatch(Size{X: 1}, Size{X: 1}) }, []string{"Dispatch", "no pipeline set"}},
		{"too many threads", func(e *Encoder) {
			e.SetPipeline(add)
			e.Dispatch(Size{X: 1}, Size{X: add.MaxTotalThreadsPerThreadgroup() + 1})
		}, []string{`kernel "add"`, "threads per threadgroup"}},
		{"buffer index", func(e *Encoder) { e.SetBuffer(31, buf, 0) }, []string{"SetBuffer", "index 31"}},
		{"buffer offset", func(e *Encoder) { e.SetBuffer(0, buf, 64) }, []string{"SetBuffer", "offset 64"}},
		{"large SetBytes", func(e *Encoder) { e.SetBytes(0, make([]byte, 4097)) }, []string{"SetBytes", "4097 bytes"}},
		{"use after End", func(e *Encoder) { e.End(); e.SetBuffer(0, buf, 0) }, []string{"SetBuffer", "already ended"}},
	} {
		cb, err := d.NewCommandBuffer()
		if err != nil {
			t.Fatal(err)
		}
		e := cb.Encoder()
		tc.encode(e)
		e.End()
		cb.Commit()
		err = cb.Wait()
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Wait error = %v, want one containing %q", tc.name, err, want)
			}
		}
		if err := cb.Wait(); err == nil {
			t.Errorf("%s: second Wait succeeded", tc.name)
		}
	}
}

// TestDependentDispatches runs several dependent dispatches in one command
// buffer, across two encoders: out1 = a + 2b, then out2 = out1 + 2b twice
// more on alternating buffers, so each dispatch reads the previous one's
// result.
func TestDependentDispatches(t *testing.T) {
	d := openDevice(t)
	add, err := compile(t, d, addSource).Pipeline("add")
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	a, b := make([]float32, n), make([]float32, n)
	for i := range a {
		a[i], b[i] = float32(i), float32(i%7)
	}
	var bufs [4]*Buffer
	for i, v := range [][]float32{a, b, make([]float32, n), make([]float32, n)} {
		if bufs[i], err = d.NewBufferFrom(floatBytes(v)); err != nil {
			t.Fatal(err)
		}
		defer bufs[i].Release()
	}
	params := make([]byte, 8)
	binary.LittleEndian.PutUint32(params, n)
	binary.LittleEndian.PutUint32(params[4:], math.Float32bits(2))

	cb, err := d.NewCommandBuffer()
	if err != nil {
		t.Fatal(err)
	}
	// (input, output) per dispatch; the first encoder runs one, the second two.
	steps := [][2]int{{0, 2}, {2, 3}, {3, 2}}
	for _, run := range [][][2]int{steps[:1], steps[1:]} {
		e := cb.Encoder()
		e.SetPipeline(add)
		e.SetBuffer(1, bufs[1], 0)
		e.SetBytes(3, params)
		for _, s := range run {
			e.SetBuffer(0, bufs[s[0]], 0)
			e.SetBuffer(2, bufs[s[1]], 0)
			e.Dispatch(Size{X: (n + 63) / 64}, Size{X: 64})
		}
		e.End()
	}
	cb.Commit()
	if err := cb.Wait(); err != nil {
		t.Fatal(err)
	}
	for i, got := range bytesFloats(bufs[2].Bytes()) {
		if want := a[i] + 6*b[i]; got != want {
			t.Fatalf("out[%d] = %v, want %v", i, got, want)
		}
	}
}

func TestCommandBufferMisuse(t *testing.T) {
	d := openDevice(t)
	for _, tc := range []struct {
		name string
		use  func(cb *CommandBuffer)
		want string
	}{
		{"two open encoders", func(cb *CommandBuffer) { cb.Encoder(); cb.Encoder().End(); cb.Commit() }, "another encoder is open"},
		{"commit with open encoder", func(cb *CommandBuffer) { cb.Encoder(); cb.Commit() }, "encoder still open"},
		{"wait before commit", func(cb *CommandBuffer) {}, "before Commit"},
		{"encoder after commit", func(cb *CommandBuffer) { cb.Commit(); cb.Encoder().End() }, "after Commit"},
	} {
		cb, err := d.NewCommandBuffer()
		if err != nil {
			t.Fatal(err)
		}
		tc.use(cb)
		if err := cb.Wait(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Wait error = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestClosedDevice(t *testing.T) {
	d, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close()
	if _, err := d.NewBuffer(16); err == nil {
		t.Error("NewBuffer after Close succeeded")
	}
	if _, err := d.NewLibrary(addSource, CompileOptions{}); err == nil {
		t.Error("NewLibrary after Close succeeded")
	}
	if _, err := d.NewCommandBuffer(); err == nil {
		t.Error("NewCommandBuffer after Close succeeded")
	}
}
