package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/goseal/ttt/gpu"
	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/nn"
)

func init() {
	commands["bench"] = command{summary: "measure prefill, decode and LoRA training speed, or plan a SEAL request (--plan)", run: runBench,
		help: "Times prefill, decode and one LoRA training step of the model on random\ntoken ids (no tokenizer is read) and prints tokens per second, the best of\n--repeat runs each.\n\nWith --plan nothing is run and no weights are read: from the model's\nconfig.json alone it prints, for a SEAL request of the shape the request\nflags give (SEAL's defaults otherwise), each phase's FLOPs, bytes moved and\npeak memory, whether training must recompute activations to fit\n--max_memory, and the roofline lower bound of each phase on Apple chips\n(--chip, or all of them; figures and sources in docs/apple-chips.md).\nA plan, not a measurement."}
}

func runBench(args []string) error {
	fs := flagSet("bench", "[flags]")
	model := fs.String("model", "", "model directory or Hugging Face id (default: the built-in demo model)")
	addOfflineFlag(fs)
	backend := fs.String("backend", "auto", backendUsage)
	promptLen := fs.Int("prompt_tokens", 256, "prompt length for prefill")
	genTokens := fs.Int("gen_tokens", 64, "tokens generated per prompt for decode")
	batch := fs.Int("batch", 16, "prompts decoded together (SEAL evaluates all questions at once)")
	trainLen := fs.Int("train_tokens", 256, "tokens per training step")
	rank := fs.Int("lora_rank", 32, "LoRA rank for the training step (q_proj, v_proj) and the plan (lora_rank)")
	repeat := fs.Int("repeat", 3, "timed repetitions of each measurement (the best is reported)")
	pf := planFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if pf.plan {
		if fs.NArg() > 0 {
			return fmt.Errorf("no arguments are taken")
		}
		pf.rank, pf.model, pf.backend = *rank, *model, *backend
		return runPlan(os.Stdout, pf)
	}
	if *promptLen < 1 || *genTokens < 1 || *batch < 1 || *trainLen < 2 || *repeat < 1 || fs.NArg() > 0 {
		return fmt.Errorf("sizes must be positive (train_tokens ≥ 2) and no arguments are taken")
	}
	m, _, desc, err := openModel(*model, *backend, false)
	if err != nil {
		return err
	}
	fmt.Println("model:", desc)
	fmt.Printf("machine: %s/%s, %d threads\n\n", runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewPCG(1, 2))
	ids := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(rng.IntN(m.Config.VocabSize))
		}
		return out
	}
	best := func(f func() error) (time.Duration, error) {
		var b time.Duration
		for i := 0; i < *repeat; i++ {
			start := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			if d := time.Since(start); i == 0 || d < b {
				b = d
			}
		}
		return b, nil
	}
	// On the Metal backend each row also says what one step encoded: kernel
	// dispatches, command buffers, host waits and device bytes allocated.
	g, _ := m.B.(*gpu.Backend)
	counts := func(before gpu.Stats, steps int) string {
		if g == nil {
			return ""
		}
		d := g.Stats()
		return fmt.Sprintf("\t%.1f\t%.1f\t%.1f\t%d", float64(d.Dispatches-before.Dispatches)/float64(steps),
			float64(d.CommandBuffers-before.CommandBuffers)/float64(steps), float64(d.Waits-before.Waits)/float64(steps), (d.AllocBytes-before.AllocBytes)/int64(steps))
	}
	stats := func() gpu.Stats {
		if g == nil {
			return gpu.Stats{}
		}
		return g.Stats()
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	header := "measurement\tshape\ttime\ttokens/s"
	if g != nil {
		header += "\tdispatches/step\tcommand buffers/step\twaits/step\tbytes allocated/step"
	}
	fmt.Fprintln(tw, header)

	prompt := ids(*promptLen)
	pb := &nn.Batch{IDs: prompt, Segs: []nn.Segment{{N: len(prompt)}}}
	for i := range prompt {
		pb.Pos = append(pb.Pos, int32(i))
	}
	before := stats()
	var logits []float32
	d, err := best(func() error { logits, err = m.Logits(pb, nil, logits); return err })
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "prefill\t%d tokens\t%v\t%.1f%s\n", *promptLen, d.Round(time.Millisecond), float64(*promptLen)/d.Seconds(), counts(before, *repeat))

	prompts := make([][]int32, *batch)
	for i := range prompts {
		prompts[i] = ids(32)
	}
	before = stats()
	d, err = best(func() error {
		_, err := m.Generate(context.Background(), prompts, nil, nn.GenerateOptions{MaxNewTokens: *genTokens})
		return err
	})
	if err != nil {
		return err
	}
	// A step here is one generated token of every prompt, the prefill's
	// share included.
	fmt.Fprintf(tw, "decode (with prefill)\t%d prompts × %d new tokens\t%v\t%.1f%s\n", *batch, *genTokens, d.Round(time.Millisecond), float64(*batch**genTokens)/d.Seconds(), counts(before, *repeat**genTokens))

	// Training: optimizer steps (forward, backward, clipping, AdamW) on one
	// sequence, as lora.Train runs them; the first step sizes the buffers,
	// the others are timed and counted.
	ad, err := lora.New(m, lora.Spec{Rank: *rank, Alpha: 2 * float64(*rank)}, rng)
	if err != nil {
		return err
	}
	d0 := lora.Data{MaxSeqLength: *trainLen, Padding: lora.MaxLength}
	ex := lora.MakeExample(ids(*trainLen), *trainLen, nil, 0)
	var (
		last  time.Duration
		steps []time.Duration
		from  gpu.Stats
	)
	if _, err := lora.Train(context.Background(), m, ad, []lora.Example{ex}, d0, lora.Params{Epochs: *repeat + 1, LR: 1e-4, BatchSize: 1, GradAccum: 1, MaxGradNorm: 1}, func(s lora.Step) {
		if s.Step == 1 {
			from = stats()
		} else {
			steps = append(steps, s.Elapsed-last)
		}
		last = s.Elapsed
	}); err != nil {
		return err
	}
	d = slices.Min(steps)
	fmt.Fprintf(tw, "training step (forward, backward, AdamW)\t%d tokens, rank %d on q,v\t%v\t%.1f%s\n", *trainLen, *rank, d.Round(time.Millisecond), float64(*trainLen)/d.Seconds(), counts(from, len(steps)))
	tw.Flush()
	fmt.Printf("\npeak resident memory: %.0f MB\n", float64(peakRSS())/(1<<20))
	if g != nil {
		fmt.Printf("peak device buffers: %.0f MB (weights mapped from their files not included)\n", float64(g.Stats().PeakBytes)/(1<<20))
	}
	return nil
}

// peakRSS is the process's peak resident set size in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) // bytes on darwin
	}
	return int64(ru.Maxrss) << 10 // KiB on Linux
}
