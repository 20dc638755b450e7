package main

import (
	"context"
	"fmt"
	"os"

	"github.com/goseal/ttt/nn"
)

func init() {
	commands["generate"] = command{summary: "complete a prompt with the model (greedy, or sampled with --temperature)", run: runGenerate,
		help: "Encodes --prompt with the model's tokenizer (special tokens as it adds\nthem), continues it greedily or with --temperature/--top_p, optionally\nthrough a PEFT adapter, and prints the new text."}
}

func runGenerate(args []string) error {
	fs := flagSet("generate", "--prompt TEXT [flags]")
	model := fs.String("model", "", "model directory or Hugging Face id (default: the built-in demo model, untrained)")
	addOfflineFlag(fs)
	backend := fs.String("backend", "auto", backendUsage)
	prompt := fs.String("prompt", "", "the text to continue (required)")
	maxTokens := fs.Int("max_tokens", 64, "most new tokens")
	temperature := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	topP := fs.Float64("top_p", 1, "nucleus sampling mass")
	seed := fs.Uint64("seed", 0, "sampling seed")
	initAdapter := fs.String("adapter", "", "a PEFT LoRA adapter folder to apply")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *prompt == "":
		return fmt.Errorf("--prompt is required")
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case *maxTokens < 0 || *temperature < 0 || !(*topP > 0 && *topP <= 1):
		return fmt.Errorf("--max_tokens and --temperature must be ≥ 0 and --top_p in (0, 1]")
	}
	m, tok, desc, err := openModel(*model, *backend, true)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "model:", desc)
	ad, err := loadAdapter(*initAdapter, m)
	if err != nil {
		return err
	}
	var ids []int32
	for _, id := range tok.Encode(*prompt, true) {
		ids = append(ids, int32(id))
	}
	if len(ids) == 0 {
		return fmt.Errorf("the prompt encodes to no tokens")
	}
	stop := append([]int{}, m.Config.EOS...)
	if id, ok := tok.EOS(); ok {
		stop = append(stop, id)
	}
	out, err := m.Generate(context.Background(), [][]int32{ids}, ad, nn.GenerateOptions{
		MaxNewTokens: *maxTokens, Temperature: *temperature, TopP: *topP, Seed: *seed, StopIDs: stop})
	if err != nil {
		return err
	}
	dec := tok.NewDecoder(true)
	for _, id := range out[0] {
		fmt.Print(dec.Add(int(id)))
	}
	fmt.Println(dec.Flush())
	return nil
}
