package msl

import (
	"strings"
	"testing"
)

func TestInstrument(t *testing.T) {
	tests := []struct {
		name, line string
		want       string // the hook call inserted before line, "" for none
	}{
		{"threadgroup load", "  %5 = load float, ptr addrspace(3) %4, align 4",
			"call void @__emu_race_tg_ld(ptr addrspace(3) %4, i64 ptrtoint (ptr getelementptr (float, ptr null, i32 1) to i64))"},
		{"vector load", "  %v = load <4 x float>, ptr addrspace(3) %p, align 16",
			"call void @__emu_race_tg_ld(ptr addrspace(3) %p, i64 ptrtoint (ptr getelementptr (<4 x float>, ptr null, i32 1) to i64))"},
		{"device load", "  %5 = load float, ptr addrspace(1) %4, align 4", ""},
		{"thread load", "  %5 = load float, ptr %4, align 4", ""},
		{"threadgroup store", "  store half %h, ptr addrspace(3) %arrayidx, align 2",
			"call void @__emu_race_tg_st(ptr addrspace(3) %arrayidx, i64 ptrtoint (ptr getelementptr (half, ptr null, i32 1) to i64))"},
		{"device store of a struct", "  store { float, i32 } { float 1.0, i32 2 }, ptr addrspace(1) %q, align 4",
			"call void @__emu_race_dev_st(ptr addrspace(1) %q, i64 ptrtoint (ptr getelementptr ({ float, i32 }, ptr null, i32 1) to i64))"},
		{"store of a pointer", "  store ptr addrspace(3) %a, ptr addrspace(3) %b, align 8",
			"call void @__emu_race_tg_st(ptr addrspace(3) %b, i64 ptrtoint (ptr getelementptr (ptr addrspace(3), ptr null, i32 1) to i64))"},
		{"atomic store", "  store atomic i32 %v, ptr addrspace(1) %p monotonic, align 4", ""},
		{"atomic load", "  %v = load atomic i32, ptr addrspace(3) %p monotonic, align 4", ""},
		{"memcpy into threadgroup memory", "  call void @llvm.memcpy.p3.p0.i64(ptr addrspace(3) align 4 %d, ptr align 4 %s, i64 32, i1 false)",
			"call void @__emu_race_tg_st(ptr addrspace(3) %d, i64 32)"},
		{"memset of device memory", "  tail call void @llvm.memset.p1.i64(ptr addrspace(1) align 4 %d, i8 0, i64 %n, i1 false)",
			"call void @__emu_race_dev_st(ptr addrspace(1) %d, i64 %n)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := instrument(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(out, "\n")
			if lines[len(lines)-1] != tc.line {
				t.Fatalf("the instruction changed or moved:\n%s", out)
			}
			got := strings.TrimSpace(strings.Join(lines[:len(lines)-1], "\n"))
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	// A copy from threadgroup memory to threadgroup memory reads one and
	// writes the other.
	out, err := instrument("  call void @llvm.memmove.p3.p3.i64(ptr addrspace(3) %d, ptr addrspace(3) %s, i64 8, i1 false)")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "@__emu_race_tg_st(ptr addrspace(3) %d, i64 8)") || !strings.Contains(out, "@__emu_race_tg_ld(ptr addrspace(3) %s, i64 8)") {
		t.Errorf("memmove:\n%s", out)
	}
}
