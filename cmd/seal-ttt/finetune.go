package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/nn"
)

func init() {
	commands["finetune"] = command{summary: "fine-tune a LoRA adapter on a JSON-lines file of training strings", run: runFinetune,
		help: "Fine-tunes a fresh LoRA adapter on the strings of --train (one JSON string\nper line) with the semantics of SEAL's server (PEFT and the Hugging Face\nTrainer of transformers 4.52.4), prints each optimizer step's loss, and\nwith --save_adapter writes the adapter in PEFT's format."}
}

func runFinetune(args []string) error {
	fs := flagSet("finetune", "--train FILE.jsonl [flags]")
	model := fs.String("model", "", "model directory or Hugging Face id (default: the built-in demo model)")
	addOfflineFlag(fs)
	backend := fs.String("backend", "auto", backendUsage)
	train := fs.String("train", "", "JSON lines, one training string per line (required)")
	rank := fs.Int("lora_rank", 32, "LoRA rank")
	alpha := fs.Float64("lora_alpha", 64, "LoRA alpha (scale = alpha/rank)")
	dropout := fs.Float64("lora_dropout", 0, "LoRA dropout")
	epochs := fs.Int("finetune_epochs", 10, "epochs")
	lr := fs.Float64("finetune_lr", 1e-3, "peak learning rate (linear decay to 0)")
	batch := fs.Int("batch_size", 1, "sequences per micro-batch")
	accum := fs.Int("gradient_accumulation_steps", 1, "micro-batches per optimizer step")
	endMask := fs.String("end_mask_substring", "", "ignore labels up to and including the first occurrence of this text")
	maxLen := fs.Int("max_seq_length", 2048, "truncate (and with max_length padding, pad) to this many tokens")
	padding := fs.String("padding", "max_length", "max_length (SEAL: pad to max_seq_length, pads in the loss) or longest (pads not in the loss)")
	targets := fs.String("target_modules", "default", "default, all-linear, or names like q_proj,v_proj")
	layers := fs.Int("lora_layers", 0, "adapt only the last N blocks (0: all)")
	seed := fs.Int64("seed", -1, "seed for initialisation, shuffling and dropout (-1: from the clock)")
	shuffle := fs.Bool("shuffle", true, "reshuffle the data every epoch")
	initAdapter := fs.String("init_adapter", "", "start from this PEFT adapter instead of a fresh one")
	save := fs.String("save_adapter", "", "write the trained adapter here (PEFT format)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *train == "" || fs.NArg() > 0 {
		return fmt.Errorf("--train FILE is required and no other arguments are taken")
	}
	seqs, err := readJSONLines(*train)
	if err != nil {
		return err
	}
	pad, err := lora.ParsePadding(*padding)
	if err != nil {
		return err
	}
	mods, err := lora.ParseTargets(*targets)
	if err != nil {
		return err
	}
	if *seed < 0 {
		*seed = time.Now().UnixNano() & 0xffffffff
	}
	m, tok, desc, err := openModel(*model, *backend, true)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "model:", desc)
	padID, ok := tok.EOS()
	if !ok {
		padID = m.Config.EOS[0]
	}
	d := lora.Data{MaxSeqLength: *maxLen, Padding: pad, EndMaskSubstring: *endMask, PadID: int32(padID)}
	exs, skipped, err := d.Examples(tok, seqs)
	if err != nil {
		return err
	}
	for _, i := range skipped {
		fmt.Fprintf(os.Stderr, "warning: line %d skipped: it encodes to no tokens\n", i+1)
	}
	spec := lora.Spec{Rank: *rank, Alpha: *alpha, Dropout: *dropout, Targets: mods, Layers: *layers}
	var ad *nn.Adapter
	if *initAdapter != "" {
		if ad, spec, err = lora.Load(*initAdapter, m); err != nil {
			return err
		}
		spec.Dropout = *dropout
	} else if ad, err = lora.New(m, spec, rand.New(rand.NewPCG(uint64(*seed), 0x10a))); err != nil {
		return err
	}
	p := lora.Params{Epochs: *epochs, LR: *lr, BatchSize: *batch, GradAccum: *accum, MaxGradNorm: 1, Shuffle: *shuffle, Seed: uint64(*seed)}
	fmt.Fprintf(os.Stderr, "training %d sequences, %d steps, seed %d, padding %s, targets %v\n", len(exs), p.Steps(len(exs)), *seed, pad, lora.Modules(ad))
	tokens := 0
	steps, err := lora.Train(context.Background(), m, ad, exs, d, p, func(s lora.Step) {
		tokens += s.Tokens
		fmt.Printf("step %d/%d  lr %.3g  loss %.4f  grad_norm %.4f  tokens/s %.0f\n", s.Step, s.Steps, s.LR, s.Loss, s.GradNorm, float64(tokens)/s.Elapsed.Seconds())
	})
	if err != nil {
		return err
	}
	if len(steps) > 0 {
		last := steps[len(steps)-1]
		fmt.Printf("done: %d steps in %.1fs, loss %.4f -> %.4f, %d tokens\n", len(steps), last.Elapsed.Seconds(), steps[0].Loss, last.Loss, tokens)
	}
	if *save != "" {
		if err := lora.Save(*save, m, ad, spec, modelName(*model)); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "adapter saved to", *save)
	}
	return nil
}

// readJSONLines reads one JSON string per non-blank line.
func readJSONLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var s string
		if err := json.Unmarshal(line, &s); err != nil {
			return nil, fmt.Errorf("%s:%d: want a JSON string: %v", path, n, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no training strings", path)
	}
	return out, nil
}

// loadAdapter loads a PEFT adapter folder, or returns nil for "".
func loadAdapter(dir string, m *nn.Model) (*nn.Adapter, error) {
	if dir == "" {
		return nil, nil
	}
	ad, _, err := lora.Load(dir, m)
	return ad, err
}
