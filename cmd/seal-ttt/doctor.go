package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/kernels/check"
	"github.com/goseal/ttt/metal"
)

func init() {
	commands["doctor"] = command{summary: "check the GPU: compile every kernel and compare it with its Go reference", run: runDoctor,
		help: "Prints the Metal device, compiles the kernel library with safe math, runs\nevery kernel against its Go reference over a set of shapes and prints a\ntable, then reports behaviours the emulator assumes (probes). Exits with\nstatus 0 only if every check passes."}
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

// minFamily is the Apple GPU family the kernels need: simdgroup matrices
// came with Apple7 (M1, A14).
const minFamily = 7

func doctor(w io.Writer) error {
	dev, err := metal.Open()
	if err != nil {
		return err
	}
	defer dev.Close()
	fmt.Fprintf(w, "device:  %s\nfamily:  Apple%d\nthreads: %d per threadgroup\nmemory:  %.1f GiB recommended working set\n",
		dev.Name(), dev.Family(), dev.MaxThreadsPerThreadgroup(), float64(dev.RecommendedWorkingSet())/(1<<30))
	if dev.Family() < minFamily {
		return fmt.Errorf("GPU family Apple%d is too old: the kernels need Apple%d or newer (simdgroup matrices)", dev.Family(), minFamily)
	}
	start := time.Now()
	lib, err := kernels.Load(dev, metal.CompileOptions{})
	if err != nil {
		return err
	}
	defer lib.Release()
	fmt.Fprintf(w, "library: %d kernels compiled in %v\n\n", len(kernels.Names()), time.Since(start).Round(time.Millisecond))

	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSHAPE\tMAX ERROR\tTOLERANCE\tRESULT\tTIME")
	cases := check.Cases()
	failed := 0
	for _, c := range cases {
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
	// follow the GPU. They do not decide the exit status.
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
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(cases))
	}
	fmt.Fprintf(w, "\nall %d checks passed\n", len(cases))
	return nil
}
