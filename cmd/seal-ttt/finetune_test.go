package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs this binary as `seal-ttt args...` and returns its stdout, stderr
// and error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SEAL_TTT_RUN_MAIN=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestFinetuneThenGenerate trains an adapter on one sentence with the
// finetune command, saves it, and has generate complete the sentence with it.
func TestFinetuneThenGenerate(t *testing.T) {
	dir := t.TempDir()
	train := filepath.Join(dir, "train.jsonl")
	os.WriteFile(train, []byte("\"The lighthouse keeper is called Oda.\"\n\n"), 0o644)
	adapter := filepath.Join(dir, "adapter")
	out, errOut, err := run(t, "finetune", "--train", train, "--lora_rank", "8", "--lora_alpha", "16",
		"--finetune_epochs", "25", "--finetune_lr", "1e-2", "--target_modules", "all-linear", "--padding", "max_length",
		"--max_seq_length", "48", "--seed", "1", "--save_adapter", adapter)
	if err != nil {
		t.Fatalf("finetune: %v\n%s", err, errOut)
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "step ") {
			n++
		}
	}
	if n != 25 || !strings.Contains(out, "done: 25 steps") {
		t.Fatalf("finetune printed %d step lines:\n%s", n, out)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(adapter, f)); err != nil {
			t.Fatal(err)
		}
	}
	got, errOut, err := run(t, "generate", "--prompt", "The lighthouse keeper", "--adapter", adapter, "--max_tokens", "20")
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, errOut)
	}
	if got != " is called Oda.\n" {
		t.Errorf("generate with the adapter: %q, want %q", got, " is called Oda.\n")
	}
	base, _, _ := run(t, "generate", "--prompt", "The lighthouse keeper", "--max_tokens", "20")
	if base == got {
		t.Error("the base model already knew the sentence")
	}
}

func TestFinetuneRejects(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("\"ok\"\n{\"not\": \"a string\"}\n"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"finetune"}, "--train FILE is required"},
		{[]string{"finetune", "--train", bad}, "bad.jsonl:2: want a JSON string"},
		{[]string{"finetune", "--train", filepath.Join(dir, "missing.jsonl")}, "no such file"},
		{[]string{"generate"}, "--prompt is required"},
		{[]string{"generate", "--prompt", "x", "--backend", "tpu"}, `unknown backend "tpu"`},
	}
	for _, c := range cases {
		_, errOut, err := run(t, c.args...)
		if err == nil || !strings.Contains(errOut, c.want) {
			t.Errorf("seal-ttt %v: err %v, stderr %q; want a failure mentioning %q", c.args, err, errOut, c.want)
		}
	}
}
