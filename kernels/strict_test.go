//go:build !darwin

package kernels_test

import (
	"fmt"
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal/msl"
)

// TestStrictCheck runs the strict shader check (address spaces enforced,
// unknown attributes rejected) over every .metal file, each after
// common.metal as in the library.
func TestStrictCheck(t *testing.T) {
	files := kernels.Files()
	common, err := kernels.FileSource(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			src, err := kernels.FileSource(name)
			if err != nil {
				t.Fatal(err)
			}
			if name != files[0] {
				src = fmt.Sprintf("#line 1 %q\n%s\n#line 1 %q\n%s", files[0], common, name, src)
			}
			if err := msl.Check(src); err != nil {
				t.Error(err)
			}
		})
	}
}
