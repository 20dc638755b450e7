//go:build !darwin && cgo

package metal_test

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/goseal/ttt/metal"
)

var (
	devOnce sync.Once
	dev     *metal.Device
	devErr  error
)

func device(t testing.TB) *metal.Device {
	devOnce.Do(func() { dev, devErr = metal.Open() })
	if devErr != nil {
		t.Fatal(devErr)
	}
	return dev
}

func floats(b []byte) []float32 {
	f := make([]float32, len(b)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return f
}

func fbytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// run compiles src, dispatches kernel over groups x threads with bufs bound
// to buffer(0), buffer(1), ... and returns the buffers' contents afterwards.
func run(t *testing.T, src, kernel string, groups, threads metal.Size, bufs ...[]float32) ([][]float32, error) {
	t.Helper()
	return runTG(t, src, kernel, groups, threads, nil, bufs...)
}

// runTG is run with threadgroup memory lengths by [[threadgroup(n)]] index.
func runTG(t *testing.T, src, kernel string, groups, threads metal.Size, tg map[int]int, bufs ...[]float32) ([][]float32, error) {
	t.Helper()
	return runOpts(t, metal.CompileOptions{}, src, kernel, groups, threads, tg, bufs...)
}

// runOpts is runTG with compile options.
func runOpts(t *testing.T, opts metal.CompileOptions, src, kernel string, groups, threads metal.Size, tg map[int]int, bufs ...[]float32) ([][]float32, error) {
	t.Helper()
	d := device(t)
	lib, err := d.NewLibrary(src, opts)
	if err != nil {
		return nil, err
	}
	p, err := lib.Pipeline(kernel)
	if err != nil {
		return nil, err
	}
	cb, err := d.NewCommandBuffer()
	if err != nil {
		t.Fatal(err)
	}
	e := cb.Encoder()
	e.SetPipeline(p)
	var mb []*metal.Buffer
	for i, b := range bufs {
		buf, err := d.NewBufferFrom(fbytes(b))
		if err != nil {
			t.Fatal(err)
		}
		defer buf.Release()
		mb = append(mb, buf)
		e.SetBuffer(i, buf, 0)
	}
	for i, n := range tg {
		e.SetThreadgroupMemory(i, n)
	}
	e.Dispatch(groups, threads)
	e.End()
	cb.Commit()
	err = cb.Wait()
	var out [][]float32
	for _, b := range mb {
		out = append(out, floats(b.Bytes()))
	}
	return out, err
}

const header = "#include <metal_stdlib>\nusing namespace metal;\n"

func TestSIMDGroupFunctions(t *testing.T) {
	src := header + `
kernel void k(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]],
              uint sg [[simdgroup_index_in_threadgroup]], uint tid [[thread_index_in_threadgroup]]) {
	float v = float(tid);
	device float* o = out + tid * 10;
	o[0] = simd_sum(v);
	o[1] = simd_max(v);
	o[2] = simd_prefix_exclusive_sum(v);
	o[3] = simd_shuffle_xor(v, 1);
	o[4] = simd_shuffle_down(v, 4);
	o[5] = simd_broadcast(v, 3);
	o[6] = lane < 16 ? simd_sum(v) : -1.0f;    // half the lanes active
	o[7] = simd_any(lane == 5) ? 1.0f : 0.0f;
	o[8] = simd_all(lane < 31) ? 1.0f : 0.0f;
	o[9] = float(sg);
}
`
	const n = 64
	out, err := run(t, src, "k", metal.Size{X: 1}, metal.Size{X: n}, make([]float32, n*10))
	if err != nil {
		t.Fatal(err)
	}
	for tid := 0; tid < n; tid++ {
		lane, base := tid%32, tid/32*32
		sum, half, prefix := 0, 0, 0
		for l := 0; l < 32; l++ {
			sum += base + l
			if l < 16 {
				half += base + l
			}
			if l < lane {
				prefix += base + l
			}
		}
		down := tid
		if lane+4 < 32 {
			down = tid + 4
		}
		halfWant := -1
		if lane < 16 {
			halfWant = half
		}
		want := []int{sum, base + 31, prefix, tid ^ 1, down, base + 3, halfWant, 1, 0, tid / 32}
		for i, w := range want {
			if got := out[0][tid*10+i]; got != float32(w) {
				t.Errorf("thread %d, value %d: got %v, want %v", tid, i, got, w)
			}
		}
	}
}

func TestSimdgroupMatrix(t *testing.T) {
	src := header + `
kernel void mm(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]], device float* c [[buffer(2)]],
               uint sg [[simdgroup_index_in_threadgroup]]) {
	simdgroup_float8x8 ma, mb;
	simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(1.0f);
	for (int k = 0; k < 16; k += 8) {
		simdgroup_load(ma, a + k, 16);
		simdgroup_load(mb, b + k * 8, 8);
		simdgroup_multiply_accumulate(acc, ma, mb, acc);
	}
	simdgroup_store(acc, c + sg * 64, 8);
}
`
	a, b := make([]float32, 8*16), make([]float32, 16*8)
	for i := range a {
		a[i] = float32(i%7) - 3
		b[i] = float32(i%5) * 0.5
	}
	out, err := run(t, src, "mm", metal.Size{X: 1}, metal.Size{X: 64}, a, b, make([]float32, 128))
	if err != nil {
		t.Fatal(err)
	}
	for sg := 0; sg < 2; sg++ {
		for r := 0; r < 8; r++ {
			for c := 0; c < 8; c++ {
				want := float32(1)
				for k := 0; k < 16; k++ {
					want += a[r*16+k] * b[k*8+c]
				}
				if got := out[2][sg*64+r*8+c]; got != want {
					t.Fatalf("simdgroup %d: c[%d][%d] = %v, want %v", sg, r, c, got, want)
				}
			}
		}
	}
}

func TestLanguage(t *testing.T) {
	src := header + `
struct P { float2 s; uint n; };
kernel void k(device float* out [[buffer(0)]], uint2 gid [[thread_position_in_grid]],
              ushort2 tg [[threadgroup_position_in_grid]], uint3 tpg [[threads_per_threadgroup]]) {
	if (gid.x != 0 || gid.y != 0) return;
	float4 v = float4(1.0f, 2.0f, 3.0f, 4.0f);
	float4 w = float4(v.yx, 5.0f, v.w);
	out[0] = w.x + w.y * 10 + w.z * 100 + w.w * 1000;   // 4512
	half one = half(1.0f), tiny = half(0.0001f);
	out[1] = float((one + tiny) - one) + 1.0f;          // one + tiny rounds to one in fp16
	out[2] = as_type<float>(0x3f800000u);               // 1
	out[3] = float(clamp(7, 0, 5)) + max(2.0f, 3.0f);   // 8
	out[4] = fast::exp(0.0f) + precise::sqrt(4.0f) + rsqrt(4.0f); // 3.5
	float2 s = float2(3.0f);
	out[5] = dot(s, float2(1.0f, 2.0f));                // 9
	out[6] = float(tpg.x * tpg.y);                      // 4
	out[7] = isnan(NAN) ? 1.0f : 0.0f;
}
`
	out, err := run(t, src, "k", metal.Size{X: 2, Y: 2}, metal.Size{X: 2, Y: 2}, make([]float32, 8))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{4512, 1, 1, 8, 3.5, 9, 4, 1}
	for i, w := range want {
		if out[0][i] != w {
			t.Errorf("out[%d] = %v, want %v", i, out[0][i], w)
		}
	}
}

func TestThreadgroupArgument(t *testing.T) {
	src := header + `
kernel void rev(device float* x [[buffer(0)]], threadgroup float* tmp [[threadgroup(0)]],
                uint i [[thread_position_in_threadgroup]], uint n [[threads_per_threadgroup]],
                uint g [[threadgroup_position_in_grid]]) {
	tmp[i] = x[g * n + i];
	threadgroup_barrier(mem_flags::mem_threadgroup);
	x[g * n + i] = tmp[n - 1 - i];
}
`
	d := device(t)
	lib, err := d.NewLibrary(src, metal.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := lib.Pipeline("rev")
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*100)
	for i := range x {
		x[i] = float32(i)
	}
	buf, _ := d.NewBufferFrom(fbytes(x))
	defer buf.Release()
	for _, setLen := range []bool{true, false} {
		cb, _ := d.NewCommandBuffer()
		e := cb.Encoder()
		e.SetPipeline(p)
		e.SetBuffer(0, buf, 0)
		if setLen {
			e.SetThreadgroupMemory(0, 400)
		}
		e.Dispatch(metal.Size{X: 3}, metal.Size{X: 100})
		e.End()
		cb.Commit()
		err := cb.Wait()
		if !setLen {
			if err == nil || !strings.Contains(err.Error(), "threadgroup memory 0 (tmp) has no length") {
				t.Errorf("without a length: got %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got := floats(buf.Bytes())
		for g := 0; g < 3; g++ {
			for i := 0; i < 100; i++ {
				if want := float32(g*100 + 99 - i); got[g*100+i] != want {
					t.Fatalf("x[%d] = %v, want %v", g*100+i, got[g*100+i], want)
				}
			}
		}
	}
}

// TestErrors runs kernels with mistakes and checks Wait reports each.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, src string
		threads   int
		want      []string
	}{
		{"barrier in divergent branch", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_threadgroup]]) {
	if (i < 10) {
		threadgroup_barrier(mem_flags::mem_threadgroup);
	} else {
		x[i] = 1;
		threadgroup_barrier(mem_flags::mem_threadgroup);
	}
}`, 64, []string{`kernel "k": barrier divergence`, "program_source:6", "program_source:9"}},
		{"return before barrier", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_threadgroup]]) {
	if (i == 3) return;
	threadgroup_barrier(mem_flags::mem_threadgroup);
}`, 64, []string{"barrier divergence", "thread (3,0,0) returned"}},
		{"write past the end", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	x[i + 1] = 1;
}`, 64, []string{"out-of-bounds access to buffer 0 (x)", "byte 256 of a 256-byte buffer", "thread 63,0,0"}},
		{"read far away", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	x[i] = x[i + 100000000];
}`, 64, []string{`kernel "k": invalid memory access`}},
		{"integer division by zero", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	uint d = uint(x[0]);
	x[i] = float(i / d);
}`, 64, []string{`kernel "k": arithmetic fault (SIGFPE, integer division by zero?)`, "thread 0,0,0"}},
		{"too much threadgroup memory", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	threadgroup float big[9000];
	big[i] = 1;
	x[i] = big[i];
}`, 64, []string{"threadgroup memory exceeds 32768 bytes"}},
		{"unbound buffer", `
kernel void k(device float* x [[buffer(0)]], device float* y [[buffer(3)]], uint i [[thread_position_in_grid]]) {
	y[i] = x[i];
}`, 64, []string{"buffer 3 (y) is not set"}},
		{"too many threads", `
kernel void k(device float* x [[buffer(0)]]) {}`, 2048, []string{"2048 threads per threadgroup exceed 1024"}},
		{"threadgroup array overrun", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_threadgroup]]) {
	threadgroup float t[64];
	threadgroup float u[8];
	t[i + 1] = 1;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (i < 8)
		u[i] = t[i];
	threadgroup_barrier(mem_flags::mem_threadgroup);
	x[i] = u[i % 8];
}`, 64, []string{"threadgroup array t (program_source:5) written past its end (at byte 0 after it)"}},
		{"threadgroup argument overrun", `
kernel void k(device float* x [[buffer(0)]], threadgroup float* t [[threadgroup(2)]], uint i [[thread_position_in_threadgroup]]) {
	t[i] = x[i];
	if (i < 2)
		t[64 + i] = 0;
}`, 64, []string{"[[threadgroup(2)]] (t) memory written past its end (at byte 0 after it)"}},
		{"simdgroup matrix in divergent code", `
kernel void k(device float* x [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
	if (lane < 16) {
		simdgroup_float8x8 m;
		simdgroup_load(m, x, 8);
		simdgroup_store(m, x, 8);
	}
}`, 32, []string{"simdgroup-matrix operations in divergent control flow: lanes 15 and 16 of SIMD group 0"}},
		{"compile error", `
kernel void k(device float* x [[buffer(0)]]) {
	x[0] = undefined_name;
}`, 1, []string{"compile error", "program_source:5:9: error: use of undeclared identifier 'undefined_name'"}},
		{"unknown attribute", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_warp]]) {}`, 1,
			[]string{`unknown attribute "thread_position_in_warp"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := map[int]int{2: 256} // for [[threadgroup(2)]]
			_, err := runTG(t, header+tc.src, "k", metal.Size{X: 1}, metal.Size{X: tc.threads}, tg, make([]float32, 64))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestWatchdog runs a kernel that never ends in a child process with a
// short limit and expects an error naming it.
func TestWatchdog(t *testing.T) {
	const child = "SEAL_TTT_WATCHDOG_TEST"
	if os.Getenv(child) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdog$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SEAL_TTT_EMU_TIMEOUT=300ms", child+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	src := header + `
kernel void spin(device atomic_uint* x [[buffer(0)]]) {
	while (atomic_load_explicit(x, memory_order_relaxed) == 0) {
	}
}`
	_, err := run(t, src, "spin", metal.Size{X: 8}, metal.Size{X: 32}, make([]float32, 8))
	if err == nil || !strings.Contains(err.Error(), `kernel "spin": still running after 300ms, stopped`) {
		t.Fatalf("got %v", err)
	}
	// The workers recover: the next dispatch runs.
	out, err := run(t, header+`
kernel void one(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) { x[i] = 1; }`,
		"one", metal.Size{X: 8}, metal.Size{X: 32}, make([]float32, 256))
	if err != nil || out[0][255] != 1 {
		t.Fatalf("after a stop: %v, %v", err, out)
	}
}

// TestMissingBarrierIsARace reads a neighbour's threadgroup slot without a
// barrier: the race detector reports it, and without the detector the read
// sees NaN, always (threadgroup memory starts as NaN).
func TestMissingBarrierIsARace(t *testing.T) {
	src := header + `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_position_in_threadgroup]], uint n [[threads_per_threadgroup]]) {
	threadgroup float t[64];
	t[i] = 1.0f;
	x[i] = t[(i + 1) % n];   // no barrier
}`
	_, err := run(t, src, "k", metal.Size{X: 1}, metal.Size{X: 64}, make([]float32, 64))
	want := `kernel "k": data race on threadgroup array t (program_source:5), byte 128: ` +
		`thread 31 (31,0,0; SIMD group 0) read it and thread 32 (32,0,0; SIMD group 1) wrote it`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got error %v, want one containing %q", err, want)
	}
	out, err := runOpts(t, metal.CompileOptions{NoRaceDetector: true}, src, "k", metal.Size{X: 1}, metal.Size{X: 64}, nil, make([]float32, 64))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range out[0][:63] {
		if !math.IsNaN(float64(v)) {
			t.Fatalf("without the detector: x[%d] = %v, want NaN", i, v)
		}
	}
}

func TestCommandBufferOrder(t *testing.T) {
	src := header + `
kernel void inc(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) { x[i] = x[i] * 2 + 1; }`
	d := device(t)
	lib, err := d.NewLibrary(src, metal.CompileOptions{FastMath: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := lib.Pipeline("inc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lib.Pipeline("nope"); err == nil {
		t.Error("Pipeline of a missing function: no error")
	}
	buf, _ := d.NewBuffer(4 * 1000)
	defer buf.Release()
	var cbs []*metal.CommandBuffer
	for c := 0; c < 3; c++ {
		cb, _ := d.NewCommandBuffer()
		e := cb.Encoder()
		e.SetPipeline(p)
		e.SetBuffer(0, buf, 0)
		for j := 0; j < 2; j++ {
			e.Dispatch(metal.Size{X: 10}, metal.Size{X: 100})
		}
		e.End()
		cb.Commit()
		cbs = append(cbs, cb)
	}
	for _, cb := range cbs {
		if err := cb.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range floats(buf.Bytes()) {
		if v != 63 { // six times x = 2x+1 from 0
			t.Fatalf("x[%d] = %v, want 63", i, v)
		}
	}

	// A dispatch of a released library fails instead of running.
	cb, _ := d.NewCommandBuffer()
	e := cb.Encoder()
	e.SetPipeline(p)
	e.SetBuffer(0, buf, 0)
	e.Dispatch(metal.Size{X: 1}, metal.Size{X: 1})
	e.End()
	lib.Release()
	cb.Commit()
	if err := cb.Wait(); err == nil || !strings.Contains(err.Error(), "library was released") {
		t.Errorf("dispatch after Release: got %v", err)
	}
	if _, err := lib.Pipeline("inc"); err == nil {
		t.Error("Pipeline after Release: no error")
	}
}

func TestHalfMatrixAndAtomics(t *testing.T) {
	src := header + `
kernel void k(device float* out [[buffer(0)]], device atomic_uint* count [[buffer(1)]],
              uint tid [[thread_index_in_threadgroup]], uint g [[threadgroup_position_in_grid]]) {
	threadgroup half a[64];
	threadgroup float res[64];
	a[tid % 64] = half(float(tid % 5) - 2.0f);
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (tid < 32) {
		simdgroup_half8x8 m, r;
		simdgroup_load(m, a, 8);
		simdgroup_multiply(r, m, m);
		simdgroup_store(r, res, 8);
	}
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (g == 0 && tid < 64)
		out[tid] = res[tid];
	atomic_fetch_add_explicit(count, 1u, memory_order_relaxed);
	float4 v = simd_sum(float4(1.0f, 2.0f, float(tid % 32), 0.0f));
	if (g == 0 && tid == 0)
		out[64] = v.x + v.y + v.z;   // 32 + 64 + 496
}`
	const groups, threads = 50, 64
	out, err := run(t, src, "k", metal.Size{X: groups}, metal.Size{X: threads}, make([]float32, 65), make([]float32, 1))
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 8; r++ {
		for c := 0; c < 8; c++ {
			var want float32 // small integers: exact in half
			for k := 0; k < 8; k++ {
				want += float32((r*8+k)%5-2) * float32((k*8+c)%5-2)
			}
			if got := out[0][r*8+c]; got != want {
				t.Errorf("half product [%d][%d] = %v, want %v", r, c, got, want)
			}
		}
	}
	if got := math.Float32bits(out[1][0]); got != groups*threads {
		t.Errorf("atomic count %d, want %d", got, groups*threads)
	}
	if out[0][64] != 592 {
		t.Errorf("simd_sum of float4: %v, want 592", out[0][64])
	}
}

func TestSetBytesLimit(t *testing.T) {
	src := header + `kernel void k(device float* x [[buffer(0)]], constant float* p [[buffer(1)]]) { x[0] = p[0]; }`
	d := device(t)
	lib, err := d.NewLibrary(src, metal.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := lib.Pipeline("k")
	buf, _ := d.NewBuffer(4)
	defer buf.Release()
	cb, _ := d.NewCommandBuffer()
	e := cb.Encoder()
	e.SetPipeline(p)
	e.SetBuffer(0, buf, 0)
	e.SetBytes(1, make([]byte, 4097))
	e.Dispatch(metal.Size{X: 1}, metal.Size{X: 1})
	e.End()
	cb.Commit()
	if err := cb.Wait(); err == nil || !strings.Contains(err.Error(), "at most 4096") {
		t.Errorf("got %v, want an error about the 4096-byte limit", err)
	}
}

// BenchmarkThreads measures the emulator's cost per thread: a kernel that
// scales 1M floats, 256 threads per threadgroup.
func BenchmarkThreads(b *testing.B) {
	src := header + `
kernel void scale(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) { x[i] = x[i] * 2.0f; }`
	d := device(b)
	lib, err := d.NewLibrary(src, metal.CompileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := lib.Pipeline("scale")
	const n = 1 << 20
	buf, _ := d.NewBuffer(4 * n)
	defer buf.Release()
	for b.Loop() {
		cb, _ := d.NewCommandBuffer()
		e := cb.Encoder()
		e.SetPipeline(p)
		e.SetBuffer(0, buf, 0)
		e.Dispatch(metal.Size{X: n / 256}, metal.Size{X: 256})
		e.End()
		cb.Commit()
		if err := cb.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/thread")
}

// BenchmarkDispatch measures the cost of one small dispatch.
func BenchmarkDispatch(b *testing.B) {
	src := header + `
kernel void one(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) { x[i] += 1.0f; }`
	d := device(b)
	lib, err := d.NewLibrary(src, metal.CompileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := lib.Pipeline("one")
	buf, _ := d.NewBuffer(4 * 32)
	defer buf.Release()
	for b.Loop() {
		cb, _ := d.NewCommandBuffer()
		e := cb.Encoder()
		e.SetPipeline(p)
		e.SetBuffer(0, buf, 0)
		e.Dispatch(metal.Size{X: 1}, metal.Size{X: 32})
		e.End()
		cb.Commit()
		if err := cb.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDivergentSIMD runs SIMD-group functions in both branches of an if:
// each branch's lanes form their own active set, as on a GPU.
func TestDivergentSIMD(t *testing.T) {
	src := header + `
kernel void k(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
	float v;
	if (lane % 3 == 0)
		v = simd_sum(1.0f);       // lanes 0, 3, ..., 30: 11 lanes
	else
		v = simd_max(float(lane)); // the other 21 lanes
	out[lane] = v;
	for (uint i = 0; i < lane % 4; i++)
		v = simd_sum(1.0f);        // iteration i has the lanes with lane % 4 > i
	out[32 + lane] = v;
}`
	out, err := run(t, src, "k", metal.Size{X: 1}, metal.Size{X: 32}, make([]float32, 64))
	if err != nil {
		t.Fatal(err)
	}
	for lane := 0; lane < 32; lane++ {
		want := float32(31)
		if lane%3 == 0 {
			want = 11
		}
		if got := out[0][lane]; got != want {
			t.Errorf("lane %d: first value %v, want %v", lane, got, want)
		}
		// The last iteration a lane runs is i = lane%4 - 1, with the
		// 8 lanes per residue class above it active.
		if lane%4 > 0 {
			want := float32(8 * (4 - lane%4))
			if got := out[0][32+lane]; got != want {
				t.Errorf("lane %d: loop value %v, want %v", lane, got, want)
			}
		}
	}
}

// TestBufferKinds binds a no-copy buffer over mmap'd memory and a buffer at
// an offset, and checks misaligned no-copy memory is refused.
func TestBufferKinds(t *testing.T) {
	src := header + `
kernel void add(device const float* a [[buffer(0)]], device float* b [[buffer(1)]], uint i [[thread_position_in_grid]]) {
	b[i] += a[i];
}`
	d := device(t)
	lib, err := d.NewLibrary(src, metal.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := lib.Pipeline("add")
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if _, err := d.NewBufferNoCopy(mem[4:]); err == nil {
		t.Error("NewBufferNoCopy of unaligned memory: no error")
	}
	a, err := d.NewBufferNoCopy(mem)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	copy(mem, fbytes([]float32{1, 2, 3, 4, 5, 6, 7, 8}))
	b, _ := d.NewBufferFrom(fbytes([]float32{10, 20, 30, 40, 50, 60}))
	defer b.Release()

	dispatch := func(offset, n int) error {
		cb, _ := d.NewCommandBuffer()
		e := cb.Encoder()
		e.SetPipeline(p)
		e.SetBuffer(0, a, 0)
		e.SetBuffer(1, b, offset)
		e.Dispatch(metal.Size{X: 1}, metal.Size{X: n})
		e.End()
		cb.Commit()
		return cb.Wait()
	}
	if err := dispatch(8, 4); err != nil {
		t.Fatal(err)
	}
	if got, want := floats(b.Bytes()), []float32{10, 20, 31, 42, 53, 64}; !slices.Equal(got, want) {
		t.Errorf("b = %v, want %v", got, want)
	}
	// Five threads from offset 8 run one element past the end.
	if err := dispatch(8, 5); err == nil || !strings.Contains(err.Error(), "byte 24 of a 24-byte buffer bound at offset 8") {
		t.Errorf("overrun from an offset: got %v", err)
	}
}

// TestRaces runs kernels with and without data races: a race is an error
// naming the memory and both threads; lanes of one SIMD group, atomics and
// accesses ordered by barriers are not races.
func TestRaces(t *testing.T) {
	tests := []struct {
		name, src string
		groups    int
		want      string // "" for no error
	}{
		{"write after write", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
	threadgroup float t[4];
	t[i % 4] = i;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	x[i] = t[i % 4];
}`, 1, "data race on threadgroup array t (program_source:5), byte 0: thread 28 (28,0,0; SIMD group 0) wrote it and thread 32 (32,0,0; SIMD group 1) wrote it with no threadgroup_barrier(mem_threadgroup) between, in threadgroup (0,0,0)"},
		{"write after read", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
	threadgroup float t[64];
	x[i] = t[i % 32];
	if (i >= 32)
		t[i - 32] = 1;
}`, 1, "byte 0: thread 0 (0,0,0; SIMD group 0) read it and thread 32 (32,0,0; SIMD group 1) wrote it"},
		{"a barrier without mem_threadgroup does not order", `
kernel void k(device float* x [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
	threadgroup float t[64];
	t[i] = i;
	threadgroup_barrier(mem_flags::mem_device);
	x[i] = t[63 - i];
}`, 1, "data race on threadgroup array t"},
		{"simdgroup matrices of two SIMD groups", `
kernel void k(device float* x [[buffer(0)]], uint sg [[simdgroup_index_in_threadgroup]]) {
	threadgroup float t[64];
	simdgroup_float8x8 m = make_filled_simdgroup_matrix<float, 8, 8>(sg);
	if (sg == 0)
		simdgroup_store(m, t, 8);
	simdgroup_load(m, t, 8);
	simdgroup_store(m, x + sg * 64, 8);
}`, 1, "thread 0 (0,0,0; SIMD group 0) wrote it and thread 32 (32,0,0; SIMD group 1) read it"},
		{"device memory written by two threadgroups", `
kernel void k(device float* x [[buffer(0)]], uint g [[threadgroup_position_in_grid]], uint i [[thread_index_in_threadgroup]]) {
	x[(g * 64 + i) % 96] = 1;
}`, 2, "both wrote byte 0 of the buffer bound to [[buffer(0)]] (x) in one dispatch"},
		{"ordered by barriers", `
kernel void k(device float* x [[buffer(0)]], uint g [[threadgroup_position_in_grid]], uint i [[thread_index_in_threadgroup]]) {
	threadgroup float t[64];
	t[i] = i;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	float v = t[63 - i];
	threadgroup_barrier(mem_flags::mem_threadgroup);
	t[i] = v;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	x[g * 64 + i] = t[63 - i];
}`, 2, ""},
		{"lanes of one SIMD group", `
kernel void k(device float* x [[buffer(0)]], uint g [[threadgroup_position_in_grid]], uint i [[thread_index_in_threadgroup]]) {
	threadgroup float t[64];
	t[i] = i;
	simdgroup_barrier(mem_flags::mem_threadgroup);
	x[g * 64 + i] = t[i ^ 1];
}`, 2, ""},
		{"reads only", `
kernel void k(device float* x [[buffer(0)]], uint g [[threadgroup_position_in_grid]], uint i [[thread_index_in_threadgroup]]) {
	threadgroup float t[1];
	if (i == 0)
		t[0] = 1;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	x[g * 64 + i] = t[0] + x[0];
}`, 2, ""},
		{"atomics", `
kernel void k(device atomic_float* x [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
	threadgroup atomic_uint n[1];
	if (i == 0)
		atomic_store_explicit(&n[0], 0u, memory_order_relaxed);
	threadgroup_barrier(mem_flags::mem_threadgroup);
	atomic_fetch_add_explicit(&n[0], 1u, memory_order_relaxed);
	threadgroup_barrier(mem_flags::mem_threadgroup);
	atomic_fetch_add_explicit(&x[0], 0.5f, memory_order_relaxed);
	atomic_fetch_max_explicit(&x[1], float(atomic_load_explicit(&n[0], memory_order_relaxed)), memory_order_relaxed);
}`, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, header+tc.src, "k", metal.Size{X: tc.groups}, metal.Size{X: 64}, make([]float32, 128))
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if tc.name == "atomics" && (out[0][0] != 64 || out[0][1] != 64) {
				t.Errorf("atomic float sum %v, max %v, want 64 and 64", out[0][0], out[0][1])
			}
			if tc.name == "lanes of one SIMD group" {
				for i, v := range out[0] {
					if want := float32(i%64 ^ 1); v != want {
						t.Fatalf("x[%d] = %v, want %v", i, v, want)
					}
				}
			}
		})
	}
}
