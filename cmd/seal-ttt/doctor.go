package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/goseal/ttt/gpu"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/kernels/check"
	"github.com/goseal/ttt/metal"
)

func init() {
	commands["doctor"] = command{summary: "check the GPU: compile every kernel and compare it with its Go reference", run: runDoctor,
		help: "Prints the system and the Metal device, compiles the kernel library with safe math, runs\nevery kernel against its Go reference over a set of shapes and prints a\ntable, then reports behaviours the emulator assumes (probes). Exits with\nstatus 0 only if every check passes."}
}

func runDoctor(args []string) error {
	fs := flagSet("doctor", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return doctor(os.Stdout)
}

// matrixFamily is the Apple GPU family of simdgroup matrices: Apple7 (M1,
// A14). Kernels that need it have Case.Family 7.
const matrixFamily = 7

// familyName names an Apple GPU family, 0 being none.
func familyName(f int) string {
	if f == 0 {
		return "not an Apple GPU"
	}
	return fmt.Sprintf("Apple%d", f)
}

// debugHint says how to look closer at a failing check on this platform.
func debugHint() string {
	if runtime.GOOS == "darwin" {
		return "To find the cause, run again with Metal's API and shader validation:\n" +
			"  MTL_DEBUG_LAYER=1 MTL_SHADER_VALIDATION=1 seal-ttt doctor"
	}
	return "The emulator already checked what MTL_DEBUG_LAYER=1 MTL_SHADER_VALIDATION=1 check on a Mac:\n" +
		"out-of-bounds access, barrier divergence and data races are errors above, naming the\n" +
		"kernel, the thread and the memory. A kernel stopped as running too long may need a\n" +
		"longer SEAL_TTT_EMU_TIMEOUT."
}

func doctor(w io.Writer) error {
	dev, err := metal.Open()
	if err != nil {
		return err
	}
	defer dev.Close()
	unified := "separate from the CPU's"
	if dev.UnifiedMemory() {
		unified = "unified"
	}
	fmt.Fprintf(w, "device:  %s\nsystem:  %s\nMSL:     %s\nfamily:  %s\nthreads: %d per threadgroup\nmemory:  %s, %.1f GiB recommended working set\n",
		dev.Name(), dev.OSVersion(), dev.LanguageVersion(), familyName(dev.Family()), dev.MaxThreadsPerThreadgroup(),
		unified, float64(dev.RecommendedWorkingSet())/(1<<30))
	old := dev.Family() < matrixFamily
	if old {
		fmt.Fprintf(w, "\nThe simdgroup-matrix kernels (matmul) need Apple%d (M1, A14) or newer; this GPU is %s.\n"+
			"Only the other kernels are checked.\n", matrixFamily, familyName(dev.Family()))
	}
	start := time.Now()
	lib, err := kernels.Load(dev, metal.CompileOptions{})
	if err != nil {
		if old {
			return fmt.Errorf("the kernel library does not build for %s (the simdgroup-matrix kernels need Apple%d): %w", familyName(dev.Family()), matrixFamily, err)
		}
		fmt.Fprintf(w, "\n%s\n", debugHint())
		return err
	}
	defer lib.Release()
	fmt.Fprintf(w, "library: %d kernels compiled in %v\n\n", len(kernels.Names()), time.Since(start).Round(time.Millisecond))

	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSHAPE\tMAX ERROR\tTOLERANCE\tRESULT\tTIME")
	cases := check.Cases()
	failed, skipped := 0, 0
	for _, c := range cases {
		if c.Family > dev.Family() {
			skipped++
			fmt.Fprintf(tw, "%s\t%s\t\t%.2g\tneeds Apple%d\t\n", c.Kernel, c.Shape, c.Tol, c.Family)
			continue
		}
		r := c.Run(dev, lib)
		result := "pass"
		if !r.Pass(c) {
			result = "FAIL"
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2g\t%.2g\t%s\t%v\n", c.Kernel, c.Shape, r.MaxErr, c.Tol, result, r.Time.Round(time.Microsecond))
		if r.Err != nil {
			tw.Flush()
			fmt.Fprintf(w, "  error: %v\n", r.Err)
		}
	}
	tw.Flush()

	// Behaviours kernels avoid depending on: reported so the emulator can
	// follow the GPU. They do not decide the exit status. The probes use
	// simdgroup matrices.
	if !old {
		probes, err := check.Probes(dev)
		if err != nil {
			fmt.Fprintf(w, "\nprobes failed (this does not fail doctor): %v\n", err)
		} else {
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "PROBE\tDEVICE\tEMULATOR\t")
			for _, p := range probes {
				note := ""
				if p.Device != p.Emulator {
					note = "differs: the emulator should follow the device"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Device, p.Emulator, note)
			}
			tw.Flush()
		}
	}
	// The model on the GPU against the CPU backend.
	models := 0
	if !old {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "MODEL CHECK (built-in model, GPU against CPU)\tMAX ERROR\tTOLERANCE\tRESULT")
		for _, c := range CheckModel(gpu.New(dev, lib)) {
			models++
			fmt.Fprintln(tw, c)
			if !c.Pass() {
				failed++
				if c.Err != nil {
					tw.Flush()
					fmt.Fprintf(w, "  error: %v\n", c.Err)
				}
			}
		}
		tw.Flush()
	}
	if failed > 0 {
		fmt.Fprintf(w, "\n%s\n", debugHint())
		return fmt.Errorf("%d of %d checks failed", failed, len(cases)-skipped+models)
	}
	if skipped > 0 {
		return fmt.Errorf("%d checks passed; %d need Apple%d, which this GPU (%s) is not: it cannot run the GPU backend",
			len(cases)-skipped, skipped, matrixFamily, familyName(dev.Family()))
	}
	fmt.Fprintf(w, "\nall %d checks passed\n", len(cases)+models)
	return nil
}
