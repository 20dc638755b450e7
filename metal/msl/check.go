package msl

import (
	"fmt"
	"path/filepath"
)

// strictFlags compile kernels as C++ for OpenCL 2021 with Metal's address
// spaces mapped onto OpenCL's and the generic address space switched off,
// so an unqualified pointer is a thread (private) pointer as in Metal. The
// OpenCL keywords local, global and private are renamed out of the way, and
// OpenCL's own headers are left out (their builtins collide with Metal's).
var strictFlags = []string{
	"-x", "clcpp", "-cl-std=clc++2021", "-cl-no-stdinc", "-fsyntax-only",
	"-Xclang", "-cl-ext=-__opencl_c_generic_address_space,-__opencl_c_pipes,-__opencl_c_device_enqueue",
	"-Ddevice=__global", "-Dconstant=__constant", "-Dthreadgroup=__local", "-Dthread=__private", "-Dkernel=",
	"-Dlocal=local_", "-Dglobal=global_", "-Dprivate=private_",
	"-Wno-unused-value",
}

// Check runs the strict shader check over MSL source: it rewrites the
// source as for the emulator (which rejects unknown attributes) and
// type-checks it with address spaces enforced, against strict.h. A device
// pointer where a thread pointer is expected is an error, as on Metal.
func Check(source string) error {
	clang, err := Clang()
	if err != nil {
		return err
	}
	dir, err := CacheDir()
	if err != nil {
		return err
	}
	inc, err := writeShim(filepath.Join(dir, "msl"))
	if err != nil {
		return err
	}
	pre, err := preprocess(clang, inc, source)
	if err != nil {
		return err
	}
	prog, err := Rewrite(pre, SourceName, Strict)
	if err != nil {
		return &CompileError{Log: err.Error()}
	}
	args := append(append([]string(nil), strictFlags...), "-I", inc, "-include", "strict.h", "-")
	if err := runClang(clang, args, prog.Source, nil); err != nil {
		return fmt.Errorf("msl: strict check: %w", err)
	}
	return nil
}
