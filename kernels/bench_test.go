package kernels_test

import (
	"testing"

	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
)

// bench measures one dispatch (commit to completion) on fresh zeroed
// buffers of the given sizes in bytes; moved is the bytes the kernel reads
// and writes, for the throughput figure.
func bench(b *testing.B, sizes []int, moved int64, encode func(l *kernels.Library, e *metal.Encoder, bufs []kernels.Buf) error) {
	d, l := library(b)
	bufs := make([]kernels.Buf, len(sizes))
	for i, size := range sizes {
		buf, err := d.NewBuffer(size)
		if err != nil {
			b.Fatal(err)
		}
		defer buf.Release()
		bufs[i] = kernels.Whole(buf)
	}
	b.SetBytes(moved)
	runBench(b, d, func(e *metal.Encoder) error { return encode(l, e, bufs) })
	roofline(b, 0, float64(moved))
}

// runBench measures one encoded call per iteration, commit to completion.
func runBench(b *testing.B, d *metal.Device, encode func(e *metal.Encoder) error) {
	b.ResetTimer()
	for b.Loop() {
		cb, err := d.NewCommandBuffer()
		if err != nil {
			b.Fatal(err)
		}
		e := cb.Encoder()
		if err := encode(e); err != nil {
			b.Fatal(err)
		}
		e.End()
		cb.Commit()
		if err := cb.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}
