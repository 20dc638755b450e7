package main

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goseal/ttt/server"
)

func TestSignalContext(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		ctx, stop := signalContext()
		if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%v did not stop the context", sig)
		}
		stop()
	}
}

func TestCycleFlagsValidation(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--max_seq_length", "0"}, "--max_seq_length must be >= 1"},
		{[]string{"--eval_max_tokens", "-1"}, "--eval_max_tokens must be >= 1"},
		{[]string{"--eval_temperature", "-0.5"}, "--eval_temperature must be >= 0"},
		{[]string{"--eval_top_p", "0"}, "--eval_top_p must be in (0, 1]"},
		{[]string{"--padding", "left"}, `unknown --padding "left"`},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		var c cycleFlags
		c.register(fs, server.DefaultConfig(), "auto")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		_, err := c.handler(slog.New(slog.NewTextHandler(io.Discard, nil)), 5555)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
	var c cycleFlags
	c.logFormat = "xml"
	if _, err := c.logger(io.Discard); err == nil {
		t.Error("--log_format xml accepted")
	}
}
