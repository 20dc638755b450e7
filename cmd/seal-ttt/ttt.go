package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/goseal/ttt/server"
)

func init() {
	commands["ttt"] = command{summary: "run one TTT request from a JSON file offline; the reply goes to stdout", run: runTTT}
}

func runTTT(args []string) error {
	fs := flag.NewFlagSet("ttt", flag.ContinueOnError)
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
