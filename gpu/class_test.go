package gpu

import "testing"

func TestClass(t *testing.T) {
	prev := 0
	for n := 1; n < 1<<24; n = n*9/8 + 1 {
		c := class(n)
		if c < n || c%16 != 0 || c < prev || (n > 64<<10 && float64(c) > 1.125*float64(n)) {
			t.Fatalf("class(%d) = %d (previous %d)", n, c, prev)
		}
		prev = c
	}
	if class(100) != 112 || class(1<<20) != 1<<20 || class(1<<20+1) != 1<<20+1<<17 {
		t.Errorf("class(100) = %d, class(1 MiB) = %d, class(1 MiB + 1) = %d", class(100), class(1<<20), class(1<<20+1))
	}
}
