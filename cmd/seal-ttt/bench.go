package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/goseal/ttt/hf"
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
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tshape\ttime\ttokens/s")

	prompt := ids(*promptLen)
	pb := &nn.Batch{IDs: prompt, Segs: []nn.Segment{{N: len(prompt)}}}
	for i := range prompt {
		pb.Pos = append(pb.Pos, int32(i))
	}
	d, err := best(func() error { _, err := m.Logits(pb, nil); return err })
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "prefill\t%d tokens\t%v\t%.1f\n", *promptLen, d.Round(time.Millisecond), float64(*promptLen)/d.Seconds())

	prompts := make([][]int32, *batch)
	for i := range prompts {
		prompts[i] = ids(32)
	}
	d, err = best(func() error {
		_, err := m.Generate(context.Background(), prompts, nil, nn.GenerateOptions{MaxNewTokens: *genTokens})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "decode (with prefill)\t%d prompts × %d new tokens\t%v\t%.1f\n", *batch, *genTokens, d.Round(time.Millisecond), float64(*batch**genTokens)/d.Seconds())

	ad, err := lora.New(m, lora.Spec{Rank: *rank, Alpha: 2 * float64(*rank)}, rng)
	if err != nil {
		return err
	}
	seq := ids(*trainLen)
	tb := &nn.TrainBatch{Batch: nn.Batch{IDs: seq, Segs: []nn.Segment{{N: len(seq)}}}, Labels: seq}
	for i := range seq {
		tb.Pos = append(tb.Pos, int32(i))
	}
	tr := m.NewTrainer()
	loss := m.B.NewTensor(hf.F32, 1, 1)
	d, err = best(func() error {
		if _, err := tr.LossAndGrad(tb, ad, 1/float32(*trainLen), 0, loss); err != nil {
			return err
		}
		return m.B.Sync()
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "training step (forward+backward)\t%d tokens, rank %d on q,v\t%v\t%.1f\n", *trainLen, *rank, d.Round(time.Millisecond), float64(*trainLen)/d.Seconds())
	tw.Flush()
	fmt.Printf("\npeak resident memory: %.0f MB\n", float64(peakRSS())/(1<<20))
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
