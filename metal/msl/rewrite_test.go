package msl

import (
	"reflect"
	"strings"
	"testing"
)

func TestRewriteKernels(t *testing.T) {
	src := `#include <metal_stdlib>
using namespace metal;
struct P { uint n; };
enum : uint { N = 32 };
inline float twice(float x) { return 2 * x; }
kernel void plain(device const float* a [[buffer(0)]], constant P& p [[buffer(3)]],
                  threadgroup float* t [[threadgroup(1)]], uint2 gid [[thread_position_in_grid]]) {
	threadgroup float x[N * 2];
	threadgroup float4 y[4][
		8];
	threadgroup float* q = t;
	x[0] = y[0][0].x + *q;
}
template <typename T>
kernel void tmpl(device T* out [[buffer(0)]], ushort lane [[thread_index_in_simdgroup]]) {}
template [[host_name("tmpl_f")]] [[kernel]] void tmpl<float>(device float* out [[buffer(0)]],
	ushort lane [[thread_index_in_simdgroup]]);
`
	p, err := Rewrite(src, "f.metal", Emulate)
	if err != nil {
		t.Fatal(err)
	}
	want := []Kernel{
		{Name: "plain", Line: 6, File: "f.metal", call: "plain", Params: []Param{
			{Name: "a", Type: "device const float*", Kind: BufferParam, Index: 0},
			{Name: "p", Type: "constant P&", Kind: BufferParam, Index: 3},
			{Name: "t", Type: "threadgroup float*", Kind: ThreadgroupParam, Index: 1},
			{Name: "gid", Type: "uint2", Kind: BuiltinParam, Builtin: "thread_position_in_grid"},
		}},
		{Name: "tmpl_f", Line: 16, File: "f.metal", call: "tmpl<float>", Params: []Param{
			{Name: "out", Type: "device float*", Kind: BufferParam, Index: 0},
			{Name: "lane", Type: "ushort", Kind: BuiltinParam, Builtin: "thread_index_in_simdgroup"},
		}},
	}
	if !reflect.DeepEqual(p.Kernels, want) {
		t.Errorf("kernels:\n got %+v\nwant %+v", p.Kernels, want)
	}
	for _, s := range []string{
		"threadgroup float (&x)[ N * 2 ] = *(threadgroup float(*)[ N * 2 ])__emu_tg_alloc(0,",
		"threadgroup float4 (&y)[ 4 ] [ 8 ] = *(threadgroup float4(*)[ 4 ] [ 8 ])__emu_tg_alloc(1,",
		"threadgroup float* q = t;", // a pointer, left alone
		"void tmpl<float>(device float* out",
		`void __emu_k_tmpl_f(void) { tmpl<float>((device float*)::__emu::buffer(0), ::__emu::pos<ushort>(`,
		`*(constant P*)::__emu::buffer(3)`,
	} {
		if !strings.Contains(p.Source, s) {
			t.Errorf("rewritten source lacks %q:\n%s", s, p.Source)
		}
	}
	if strings.Contains(p.Source, "[[") {
		t.Errorf("attributes left in:\n%s", p.Source)
	}
	// Line structure is kept, so clang's positions match the source.
	body := p.Source[:strings.Index(p.Source, "extern \"C\"")]
	if got, want := strings.Count(body, "\n"), strings.Count(src, "\n")+1; got != want {
		t.Errorf("rewritten source has %d lines before the entry points, want %d", got, want)
	}
	if p2, err := Rewrite(src, "f.metal", Strict); err != nil || strings.Contains(p2.Source, "__emu_k_") {
		t.Errorf("strict mode: err %v, or entry points generated", err)
	}
}

func TestRewriteErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"kernel void k(device float* a [[buffer(0)]], uint i [[thread_id]]) {}", `f.metal:1: unknown attribute "thread_id"`},
		{"kernel void k(device float* a) {}", "kernel parameter a needs exactly one attribute"},
		{"kernel void k(device float* a [[buffer(31)]]) {}", `bad index "31"`},
		{"kernel void k(float a [[buffer(0)]]) {}", "a buffer must be a pointer or a reference"},
		{"kernel void k(device float* a [[buffer(0)]]) {\n threadgroup float x[4], y[4];\n}", "f.metal:2: declare one threadgroup variable per statement"},
		{"template <typename T> kernel void k(device T* a [[buffer(0)]]) {}\ntemplate [[kernel]] void k<float>(device float* a [[buffer(0)]]);", "f.metal:2: instantiation of kernel k without [[host_name(...)]]"},
		{"kernel void k(device float4* a [[buffer(0)]]) { a[0] = (float4)a[1].x; }", "C-style cast to vector type float4"},
		{"kernel void k(device float* a [[buffer(0)]]) {}\nkernel void k(device float* a [[buffer(0)]]) {}", "kernel k defined twice"},
		{"/* unterminated", "unterminated comment"},
	}
	for _, tc := range tests {
		_, err := Rewrite(tc.src, "f.metal", Emulate)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got error %v, want %q", tc.src, err, tc.want)
		}
	}
}
