//go:build !darwin

// Planted bugs run only on the emulator (see broken_test.go).

package kernels_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/kernels/check"
)

// barrierCall matches one threadgroup_barrier statement.
var barrierCall = regexp.MustCompile(`threadgroup_barrier\s*\([^;]*\)\s*;`)

// TestEveryBarrierIsNeeded removes each threadgroup_barrier of every kernel
// file in turn and requires that the race detector report a data race in
// at least one of that file's check cases. A barrier whose removal nothing
// detects is redundant or under-tested; either way it needs attention.
func TestEveryBarrierIsNeeded(t *testing.T) {
	d, _ := library(t)
	start := time.Now()
	cases := check.Cases()
	for _, file := range kernels.Files() {
		src, err := kernels.FileSource(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range barrierCall.FindAllStringIndex(src, -1) {
			line := 1 + strings.Count(src[:at[0]], "\n")
			t.Run(fmt.Sprintf("%s:%d", file, line), func(t *testing.T) {
				// Spaces keep the other lines where they were.
				broken := src[:at[0]] + strings.Repeat(" ", at[1]-at[0]) + src[at[1]:]
				lib, err := kernels.LoadWith(d, map[string]string{file: broken})
				if err != nil {
					t.Fatal(err)
				}
				defer lib.Release()
				ran := 0
				for _, c := range cases {
					if c.File != file {
						continue
					}
					ran++
					if r := c.Run(d, lib); r.Err != nil && strings.Contains(r.Err.Error(), "data race") {
						return
					}
				}
				t.Errorf("without the barrier at %s:%d, none of the file's %d check cases reports a data race: "+
					"the barrier is redundant, or the cases miss what it orders", file, line, ran)
			})
		}
	}
	t.Logf("%v", time.Since(start))
}
