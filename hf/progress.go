package hf

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows the bytes of one download: a bar (bytes, rate, time left)
// on a terminal, a plain line every lineEvery otherwise, as logs want. A nil
// *progress shows nothing.
type progress struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar // nil when not on a terminal
	w     io.Writer
	label string
	total int64
	done  int64
	start time.Time
	last  time.Time // when the last plain line was written
}

// lineEvery spaces plain progress lines.
const lineEvery = 10 * time.Second

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now()}
	p.last = p.start
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
		return p
	}
	fmt.Fprintf(w, "downloading %s: %s\n", label, byteSize(total))
	return p
}

// Write counts len(b) bytes as done, so that a download can tee into it.
func (p *progress) Write(b []byte) (int, error) {
	p.add(int64(len(b)))
	return len(b), nil
}

func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.bar != nil {
		p.bar.Add64(n)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= lineEvery && p.done < p.total {
		p.last = now
		rate := float64(p.done) / now.Sub(p.start).Seconds()
		left := time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(p.w, "downloading %s: %s of %s (%d%%), %s/s, about %v left\n",
			p.label, byteSize(p.done), byteSize(p.total), 100*p.done/p.total, byteSize(int64(rate)), left)
	}
}

// finish ends the bar or writes the closing line, saying how much came.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		if p.done >= p.total {
			p.bar.Finish()
		} else {
			p.bar.Exit()
			fmt.Fprintln(p.w)
		}
		return
	}
	d := time.Since(p.start)
	fmt.Fprintf(p.w, "downloaded %s: %d of %d bytes (%s) in %v, %s/s\n", p.label, p.done, p.total, byteSize(p.done),
		d.Round(time.Millisecond), byteSize(int64(float64(p.done)/d.Seconds())))
}

// byteSize writes n bytes in decimal units, as the hub's pages do.
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/unit, 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %cB", f, "kMGTP"[i])
}
