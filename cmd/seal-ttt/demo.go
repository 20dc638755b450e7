package main

import (
	"fmt"
	"os"

	"github.com/goseal/ttt/server"
)

func init() {
	commands["demo"] = command{summary: "show test-time training: the built-in model learns an invented passage and answers from it", run: runDemo,
		help: "Starts the server on the built-in model (tiny, untrained, byte vocabulary),\nsends it one request about an invented passage through a real ZeroMQ\nclient, and prints the answers before and after test-time training.\n\nThe request sets its own hyperparameters, not SEAL's defaults: on an\nuntrained model SEAL's (rank 32, lr 1e-3, 10 epochs, sequences padded with\nEOS that stay in the loss) mostly teach it to answer with nothing. See\nserver/demo.json for the values used."}
}

func runDemo(args []string) error {
	fs := flagSet("demo", "[flags]")
	var c cycleFlags
	// The demo's request is small and its answers short: shorter sequences
	// and answers than SEAL's defaults keep it quick on any machine.
	d := server.DefaultConfig()
	d.MaxSeqLength, d.MaxTokens = 192, 24
	c.register(fs, d, "contains")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, err := c.logger(os.Stderr)
	if err != nil {
		return err
	}
	h, err := c.handler(log, 0)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	_, err = server.Demo(ctx, h, os.Stdout)
	return err
}
