package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/goseal/ttt/server"
)

func init() {
	commands["ttt"] = command{summary: "run one TTT request from a JSON file offline; the reply goes to stdout", run: runTTT, help: tttHelp}
}

// tttHelp describes the request, which serve receives in the same form.
const tttHelp = `Runs the cycle serve runs for one request, read from a JSON file, and
prints the reply. The request is a JSON object (every key optional; see the
README for types and ranges; examples/request.json is one):

  train_sequences              list of strings to fine-tune on (none: no training)
  eval_questions               list of {"question", "answer"} objects
  lora_rank 32, lora_alpha 64, lora_dropout 0
  finetune_epochs 10, finetune_lr 1e-3
  batch_size 1, gradient_accumulation_steps 1
  end_mask_substring           mask the loss up to and including this text
  skip_training false          baseline answers only
  baseline_eval true           false: skip the baseline (accuracy 0, texts "")
  chain_of_thought false       reasoning prompt, graded after "Final answer:"
  seed, padding ("max_length" or "longest"), target_modules, lora_layers

The reply has baseline_accuracy, adapter_accuracy, adapter_gain,
baseline_texts, adapter_texts, baseline_correct, adapter_correct and gains,
or {"error": "Type: message"}.`

func runTTT(args []string) error {
	fs := flagSet("ttt", "--request FILE.json [flags]")
	var c cycleFlags
	c.register(fs, server.DefaultConfig(), "auto")
	path := fs.String("request", "", "JSON request file, as a SEAL client would send it (required)")
	port := fs.Int("zmq_port", 5555, "only names the kept adapter directories (--keep_adapter_dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" || fs.NArg() > 0 {
		return errors.New("usage: seal-ttt ttt [flags] --request FILE.json")
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return err
	}
	log, err := c.logger(os.Stderr)
	if err != nil {
		return err
	}
	h, err := c.handler(log, *port)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	reply, _ := h.Handle(ctx, [][]byte{data})
	if _, err := fmt.Fprintf(os.Stdout, "%s\n", reply); err != nil {
		return err
	}
	var failure struct{ Error string }
	if json.Unmarshal(reply, &failure) == nil && failure.Error != "" {
		return fmt.Errorf("request failed: %s", failure.Error)
	}
	return nil
}
