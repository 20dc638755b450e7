package msl

import (
	"fmt"
	"regexp"
	"strings"
)

// The race detector's hooks in shim.h, called before each access.
const (
	hookTGLoad   = "__emu_race_tg_ld"
	hookTGStore  = "__emu_race_tg_st"
	hookDevStore = "__emu_race_dev_st"
)

// Address spaces as shim.h defines them.
const (
	asDevice      = "1"
	asThreadgroup = "3"
)

var (
	// A load or store through a device or threadgroup pointer, not atomic.
	irLoad  = regexp.MustCompile(`^\s*%[-\w.$"]+ = load (?:volatile )?(.*?), ptr addrspace\(([13])\) (%[-\w.$]+|%"[^"]*")`)
	irStore = regexp.MustCompile(`^\s*store (?:volatile )?(.*), ptr addrspace\(([13])\) (%[-\w.$]+|%"[^"]*")`)
	// A memory intrinsic: its destination and, for copies, its source.
	irMem = regexp.MustCompile(`^\s*(?:tail |notail )?call void @llvm\.(memcpy|memmove|memset)(?:\.inline)?\.[\w.]+\((.*)\)`)
)

// instrument inserts the race detector's hook calls into LLVM IR emitted by
// clang from shim-based source before optimisation: a call before every
// load from threadgroup memory, every store to threadgroup or device
// memory, and every memory intrinsic that reads or writes them. Atomic
// operations are left alone.
func instrument(ir string) (string, error) {
	lines := strings.Split(ir, "\n")
	out := make([]string, 0, len(lines)*5/4)
	for n, line := range lines {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "store atomic") || strings.Contains(trimmed, "= load atomic"):
		case irLoad.MatchString(line):
			m := irLoad.FindStringSubmatch(line)
			if m[2] == asThreadgroup {
				out = append(out, hookCall(hookTGLoad, m[2], m[3], sizeOf(m[1])))
			}
		case irStore.MatchString(line):
			m := irStore.FindStringSubmatch(line)
			ty, err := storeType(m[1])
			if err != nil {
				return "", fmt.Errorf("msl: instrumenting line %d of the IR: %v: %s", n+1, err, trimmed)
			}
			out = append(out, hookCall(storeHook(m[2]), m[2], m[3], sizeOf(ty)))
		case irMem.MatchString(line):
			m := irMem.FindStringSubmatch(line)
			args := splitArgs(m[2])
			if len(args) < 3 {
				return "", fmt.Errorf("msl: instrumenting line %d of the IR: cannot parse %s", n+1, trimmed)
			}
			if !strings.HasPrefix(args[2], "i64 ") {
				return "", fmt.Errorf("msl: instrumenting line %d of the IR: a memory intrinsic without an i64 size: %s", n+1, trimmed)
			}
			size := lastField(args[2])
			if as, p := pointerArg(args[0]); as != "" {
				out = append(out, hookCall(storeHook(as), as, p, size))
			}
			if as, p := pointerArg(args[1]); m[1] != "memset" && as == asThreadgroup {
				out = append(out, hookCall(hookTGLoad, as, p, size))
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n"), nil
}

func storeHook(as string) string {
	if as == asDevice {
		return hookDevStore
	}
	return hookTGStore
}

// hookCall is a call of hook with the pointer p in address space as and
// the access's size, an i64 operand.
func hookCall(hook, as, p, size string) string {
	return fmt.Sprintf("  call void @%s(ptr addrspace(%s) %s, i64 %s)", hook, as, p, size)
}

// sizeOf is the store size of IR type ty, as a constant expression.
func sizeOf(ty string) string {
	return fmt.Sprintf("ptrtoint (ptr getelementptr (%s, ptr null, i32 1) to i64)", ty)
}

// storeType returns the type of "TYPE VALUE", the operand of a store.
func storeType(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("empty store operand")
	}
	if strings.HasPrefix(s, "ptr addrspace(") {
		end := strings.IndexByte(s, ')')
		return s[:end+1], nil
	}
	if s[0] == '<' || s[0] == '{' || s[0] == '[' {
		depth := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '<', '{', '[':
				depth++
			case '>', '}', ']':
				depth--
				if depth == 0 {
					return s[:i+1], nil
				}
			}
		}
		return "", fmt.Errorf("unbalanced %c in a store's type", s[0])
	}
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i], nil
	}
	return "", fmt.Errorf("cannot find a store's type")
}

// splitArgs splits a call's argument list at top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth, last := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '<', '{', '[':
			depth++
		case ')', '>', '}', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[last:i]))
				last = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[last:]))
}

// pointerArg returns the address space (device or threadgroup only) and
// the value of a pointer argument such as "ptr addrspace(3) align 4 %x".
func pointerArg(arg string) (as, p string) {
	for _, a := range []string{asDevice, asThreadgroup} {
		if strings.HasPrefix(arg, "ptr addrspace("+a+")") {
			return a, lastField(arg)
		}
	}
	return "", ""
}

func lastField(s string) string {
	f := strings.Fields(s)
	return f[len(f)-1]
}
