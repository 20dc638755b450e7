package kernels_test

import (
	"strings"
	"testing"

	"github.com/goseal/ttt/plan"
)

// roofline reports, on a Mac whose chip is in plan.Chips, the fraction of
// that chip's roofline bound a benchmark reached: the bound of one run,
// max(flops / FP32 peak, bytes / memory bandwidth), over its measured time.
// On the emulator, or a chip the table lacks, it reports nothing: there is
// no bound to hold the time to.
func roofline(b *testing.B, flops, bytes float64) {
	d, _ := library(b)
	chip, err := plan.ChipByName(strings.TrimPrefix(d.Name(), "Apple "))
	if err != nil || b.N == 0 {
		return
	}
	bound := max(flops/(chip.FP32TFLOPS*1e12), bytes/(chip.BandwidthGBs*1e9))
	b.ReportMetric(bound/(b.Elapsed().Seconds()/float64(b.N)), "of-roofline")
}
