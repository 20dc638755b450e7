package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runSeal runs this binary as `seal-ttt args...` to completion.
func runSeal(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SEAL_TTT_RUN_MAIN=1", "OPENAI_API_KEY=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestHelp: every command's -h prints its usage line and a paragraph, and
// exits 0; `ttt -h` describes the request's keys.
func TestHelp(t *testing.T) {
	for name, c := range commands {
		t.Run(name, func(t *testing.T) {
			out, err := runSeal(t, name, "-h")
			if err != nil {
				t.Fatalf("exit %v\n%s", err, out)
			}
			if !strings.HasPrefix(out, "usage: seal-ttt "+name) || c.help == "" || !strings.Contains(out, c.help) || !strings.Contains(out, "flags:") {
				t.Errorf("-h printed:\n%s", out)
			}
		})
	}
	out, err := runSeal(t, "ttt", "-h")
	for _, key := range []string{"train_sequences", "eval_questions", "lora_rank", "finetune_lr", "gradient_accumulation_steps", "end_mask_substring", "skip_training", "baseline_eval", "chain_of_thought"} {
		if err != nil || !strings.Contains(out, key) {
			t.Errorf("ttt -h does not describe %s (%v)", key, err)
		}
	}
	if out, err := runSeal(t, "-h"); err != nil || !strings.Contains(out, "commands:") {
		t.Errorf("seal-ttt -h: %v\n%s", err, out)
	}
}

// TestServeBindsBeforeLoading: a port in use fails the server before it
// reads the model (here a folder that does not exist).
func TestServeBindsBeforeLoading(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	out, err := runSeal(t, "serve", "--zmq_host", "127.0.0.1", "--zmq_port", port, "--model", filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(out, "binding tcp://127.0.0.1:"+port) || strings.Contains(out, "none") {
		t.Errorf("exit %v, output:\n%s", err, out)
	}
}

// TestBenchNeedsNoTokenizer runs bench on a model folder with weights and
// config.json only.
func TestBenchNeedsNoTokenizer(t *testing.T) {
	dir := filepath.Join("..", "..", "nn", "testdata", "models", "qwen2_tied", "f32")
	out, err := runSeal(t, "bench", "--model", dir, "--prompt_tokens", "8", "--gen_tokens", "2", "--batch", "1", "--train_tokens", "8", "--lora_rank", "2", "--repeat", "1")
	if err != nil || !strings.Contains(out, "prefill") {
		t.Errorf("exit %v, output:\n%s", err, out)
	}
}

// TestServeWarnsOnEveryInterface: binding every interface, SEAL's default,
// logs a warning that names the flag to serve this machine only.
func TestServeWarnsOnEveryInterface(t *testing.T) {
	out, err := runSeal(t, "serve", "--zmq_host", "*", "--zmq_port", freePort(t), "--model", filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(out, "every network interface") || !strings.Contains(out, "--zmq_host 127.0.0.1") {
		t.Errorf("exit %v, output:\n%s", err, out)
	}
}
