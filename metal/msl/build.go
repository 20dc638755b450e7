package msl

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// shim is the Metal standard library shim the emulator compiles kernels
// against; abi is the header it shares with the emulator's host side.
var (
	//go:embed shim.h
	shim string
	//go:embed abi.h
	abi string
	//go:embed strict.h
	strictShim string
	//go:embed vectypes.h
	vectypes string
)

// SourceName is the file name compile errors give to library source that
// carries no #line directive, as Metal's compiler does.
const SourceName = "program_source"

// metalHeaders are the standard headers a kernel may include; the
// preprocessor finds them empty (shim.h is force-included instead).
var metalHeaders = []string{"metal_stdlib", "metal_math", "metal_simdgroup", "metal_simdgroup_matrix", "metal_atomic", "simd/simd.h"}

// Clang returns the clang the emulator and the strict check use:
// $SEAL_TTT_CLANG, else clang-19 on the PATH, else /usr/bin/clang-19.
func Clang() (string, error) {
	if c := os.Getenv("SEAL_TTT_CLANG"); c != "" {
		return c, nil
	}
	if p, err := exec.LookPath("clang-19"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/clang-19"); err == nil {
		return "/usr/bin/clang-19", nil
	}
	return "", errors.New("msl: clang-19 not found (install it with `make deps`, or set SEAL_TTT_CLANG)")
}

// CacheDir is where built kernels are kept: $SEAL_TTT_CACHE, else the
// user's cache directory's seal-ttt folder, else (no home directory) one in
// the temporary directory.
func CacheDir() (string, error) {
	if d := os.Getenv("SEAL_TTT_CACHE"); d != "" {
		return d, nil
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "seal-ttt"), nil
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("seal-ttt-cache-%d", os.Getuid())), nil
}

// Library is a built kernel library: a shared object and its kernels.
type Library struct {
	Path    string   // the shared object
	Kernels []Kernel // in source order
}

// CompileError is a compile failure with the compiler's text.
type CompileError struct {
	Log string
}

// Error returns the compiler's text.
func (e *CompileError) Error() string { return "compile error:\n" + strings.TrimRight(e.Log, "\n") }

// hostFlags are the code-generation flags for this machine's CPU.
var hostFlags = sync.OnceValue(func() []string {
	if runtime.GOARCH != "amd64" {
		return nil
	}
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(info), "\n") {
		if !strings.HasPrefix(line, "flags") {
			continue
		}
		has := map[string]bool{}
		for _, f := range strings.Fields(line) {
			has[f] = true
		}
		if has["avx2"] && has["fma"] && has["f16c"] {
			return []string{"-mtls-dialect=gnu2", "-mavx2", "-mfma", "-mf16c"}
		}
		return []string{"-mtls-dialect=gnu2"}
	}
	return nil
})

func compileFlags(fast bool) []string {
	f := []string{"-x", "c++", "-std=c++17", "-O2", "-fPIC", "-shared",
		"-fno-strict-aliasing", "-fwrapv", "-fno-exceptions", "-fno-rtti", "-fno-math-errno",
		"-fvisibility=hidden", "-fvisibility-inlines-hidden",
		"-Wno-unknown-attributes", "-Wno-user-defined-literals",
		"-Xclang", "-ffloat16-excess-precision=none"}
	if fast {
		f = append(f, "-ffp-contract=fast", "-fno-signed-zeros", "-fno-trapping-math", "-freciprocal-math", "-fassociative-math")
	}
	return append(f, hostFlags()...)
}

// Options are the options of Build.
type Options struct {
	// FastMath compiles with fast-math flags (see metal.CompileOptions).
	FastMath bool
	// Race builds the race detector into the library: hooks before every
	// threadgroup load and store and every device store (see instrument).
	Race bool
}

// Build compiles MSL source for the emulator, or takes the shared object
// from the cache when the same source was built before.
func Build(source string, opts Options) (*Library, error) {
	clang, err := Clang()
	if err != nil {
		return nil, err
	}
	dir, err := CacheDir()
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "msl")
	inc, err := writeShim(dir)
	if err != nil {
		return nil, err
	}
	pre, err := preprocess(clang, inc, source)
	if err != nil {
		return nil, err
	}
	prog, err := Rewrite(pre, SourceName, Emulate)
	if err != nil {
		return nil, &CompileError{Log: err.Error()}
	}
	// The key covers what clang sees: the rewritten source, the shim, the
	// flags and the instrumentation.
	h := sha256.New()
	for _, s := range append([]string{shim, abi, prog.Source, clang, fmt.Sprint(opts.Race)}, compileFlags(opts.FastMath)...) {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	so := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:32]+".so")
	if _, err := os.Stat(so); err == nil {
		return &Library{Path: so, Kernels: prog.Kernels}, nil
	}
	tmp, err := os.CreateTemp(dir, "build-*.so")
	if err != nil {
		return nil, fmt.Errorf("msl: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	flags := compileFlags(opts.FastMath)
	if opts.Race {
		// Clang's unoptimised IR, instrumented, then optimised and compiled:
		// every access of the source gets its hook, before the optimiser
		// merges or vectorises accesses.
		var ir bytes.Buffer
		args := append(slices.Clone(flags), "-S", "-emit-llvm", "-Xclang", "-disable-llvm-passes", "-I", inc, "-include", "shim.h", "-o", "-", "-")
		if err := runClang(clang, args, prog.Source, &ir); err != nil {
			return nil, err
		}
		inst, err := instrument(ir.String())
		if err != nil {
			return nil, err
		}
		args = append(irFlags(flags), "-o", tmp.Name(), "-", "-lm")
		if err := runClang(clang, args, inst, nil); err != nil {
			return nil, err
		}
	} else {
		args := append(flags, "-I", inc, "-include", "shim.h", "-o", tmp.Name(), "-", "-lm")
		if err := runClang(clang, args, prog.Source, nil); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp.Name(), so); err != nil {
		return nil, fmt.Errorf("msl: %w", err)
	}
	return &Library{Path: so, Kernels: prog.Kernels}, nil
}

// irFlags turns the flags for compiling C++ into those for compiling its IR.
func irFlags(flags []string) []string {
	out := []string{"-x", "ir"}
	for i := 0; i < len(flags); i++ {
		switch f := flags[i]; {
		case f == "-x" || f == "-std=c++17":
			if f == "-x" {
				i++
			}
		case f == "-Xclang":
			i++ // front-end options
		case strings.HasPrefix(f, "-W") || strings.HasPrefix(f, "-fvisibility") || strings.HasPrefix(f, "-fno-rtti") || strings.HasPrefix(f, "-fno-exceptions"):
		default:
			out = append(out, f)
		}
	}
	return out
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("msl: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("msl: %w", err)
	}
	return nil
}

// writeShim writes the shim and the empty standard headers into a folder
// named after their content and returns it.
func writeShim(dir string) (string, error) {
	sum := sha256.Sum256([]byte(shim + abi + strictShim + vectypes))
	inc := filepath.Join(dir, "shim-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(inc, "done")); err == nil {
		return inc, nil
	}
	files := map[string]string{"shim.h": shim, "abi.h": abi, "strict.h": strictShim, "vectypes.h": vectypes, "done": ""}
	for _, h := range metalHeaders {
		files[filepath.Join("std", h)] = ""
	}
	for _, name := range sortedKeys(files) {
		p := filepath.Join(inc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("msl: %w", err)
		}
		if err := writeAtomic(p, []byte(files[name])); err != nil {
			return "", err
		}
	}
	return inc, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "done" {
			keys = append(keys, k)
		}
	}
	// "done" last: its presence means the rest is complete.
	slices.Sort(keys)
	return append(keys, "done")
}

// preprocess runs the C preprocessor over source, with the Metal standard
// headers empty, keeping line markers for error positions.
func preprocess(clang, inc, source string) (string, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command(clang, "-E", "-x", "c++", "-std=c++17", "-nostdinc", "-nostdinc++",
		"-D__METAL_VERSION__=310", "-I", filepath.Join(inc, "std"), "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("#line 1 %q\n%s", SourceName, source))
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if stderr.Len() == 0 {
			return "", fmt.Errorf("msl: %s: %w", clang, err)
		}
		return "", &CompileError{Log: stderr.String()}
	}
	return out.String(), nil
}

// runClang runs clang with input on its standard input, its output into
// out if not nil.
func runClang(clang string, args []string, input string, out *bytes.Buffer) error {
	var stderr bytes.Buffer
	cmd := exec.Command(clang, args...)
	cmd.Stdin = strings.NewReader(input)
	cmd.Stderr = &stderr
	if out != nil {
		cmd.Stdout = out
	}
	if err := cmd.Run(); err != nil {
		if stderr.Len() == 0 {
			return fmt.Errorf("msl: %s: %w", clang, err)
		}
		return &CompileError{Log: stderr.String()}
	}
	return nil
}
