package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/goseal/ttt/server"
)

func init() {
	commands["demo"] = command{summary: "show test-time training: the built-in model learns an invented passage and answers from it", run: runDemo}
}

func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
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
