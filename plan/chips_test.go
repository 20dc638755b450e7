package plan

import (
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestChipsMatchDocs parses the table of docs/apple-chips.md, where every
// figure's source is given, and requires Chips to hold the same rows.
func TestChipsMatchDocs(t *testing.T) {
	data, err := os.ReadFile("../docs/apple-chips.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| M") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	if len(rows) != len(Chips) {
		t.Fatalf("docs/apple-chips.md has %d chips, Chips %d", len(rows), len(Chips))
	}
	num := func(s string) float64 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("docs/apple-chips.md: %q is not a number", s)
		}
		return f
	}
	for i, r := range rows {
		c := Chips[i]
		if len(r) != 7 {
			t.Fatalf("docs/apple-chips.md row %q: %d columns, want 7", r, len(r))
		}
		doc := Chip{r[0], int(num(r[1])), num(r[2]), num(r[3]), num(r[4]), num(r[5]), int(num(r[6]))}
		if doc != c {
			t.Errorf("docs/apple-chips.md has %+v, Chips %+v", doc, c)
		}
	}
}

// TestChipRates: every FP32 figure is cores · 256 · clock rounded to two
// places (the table's derivation), and no chip is slower than the one
// below it in its generation.
func TestChipRates(t *testing.T) {
	for i, c := range Chips {
		derived := float64(c.GPUCores) * FLOPsPerCoreCycle * c.ClockGHz / 1000
		if math.Abs(derived-c.FP32TFLOPS) > 0.005 { // the table rounds to 0.01
			t.Errorf("%s: FP32 %.2f TFLOPS, cores × 256 × clock gives %.4f", c.Name, c.FP32TFLOPS, derived)
		}
		if c.FP16TFLOPS < c.FP32TFLOPS {
			t.Errorf("%s: FP16 %.2f below FP32 %.2f", c.Name, c.FP16TFLOPS, c.FP32TFLOPS)
		}
		if i > 0 && Chips[i-1].Name[:2] == c.Name[:2] && (c.BandwidthGBs <= Chips[i-1].BandwidthGBs || c.FP32TFLOPS <= Chips[i-1].FP32TFLOPS) {
			t.Errorf("%s is not above %s", c.Name, Chips[i-1].Name)
		}
	}
}

func TestChipByName(t *testing.T) {
	for _, name := range []string{"M2 Max", "m2max", "m2-max", "M2_MAX"} {
		if c, err := ChipByName(name); err != nil || c.Name != "M2 Max" || c.BandwidthGBs != 400 {
			t.Errorf("ChipByName(%q) = %+v, %v", name, c, err)
		}
	}
	if _, err := ChipByName("M4 Ultra"); err == nil || !strings.Contains(err.Error(), "M4 Max") {
		t.Errorf("M4 Ultra: %v", err)
	}
	// M2 Max: 13.6 TFLOPS and 400 GB/s. 13.6e12 FLOPs take a second; so
	// do 400e9 bytes; the bound is the larger.
	c, _ := ChipByName("M2 Max")
	for _, ph := range []Phase{{FLOPs: 13.6e12, Bytes: 1}, {FLOPs: 1, Bytes: 400e9}, {FLOPs: 6.8e12, Bytes: 400e9}} {
		if b := ph.Bound(c); math.Abs(b-1) > 1e-12 { // float rounding of the quotients
			t.Errorf("%+v on M2 Max: %g s, want 1", ph, b)
		}
	}
}
