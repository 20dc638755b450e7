package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// TestCommandsOnMetal: finetune, generate and ttt give the CPU backend's
// output with --backend metal (the MSL emulator off a Mac).
func TestCommandsOnMetal(t *testing.T) {
	dir := t.TempDir()
	train := filepath.Join(dir, "train.jsonl")
	os.WriteFile(train, []byte("\"The lighthouse keeper is called Oda.\"\n"), 0o644)
	// The example request with a fixed seed (otherwise each request draws
	// its own adapter initialisation, as SEAL's server does).
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	request := filepath.Join(dir, "request.json")
	os.WriteFile(request, []byte(strings.Replace(string(example), "{", `{"seed": 1,`, 1)), 0o644)
	outputs := map[string][3]string{}
	for _, backend := range []string{"cpu", "metal"} {
		adapter := filepath.Join(dir, backend)
		tuned, errOut, err := run(t, "finetune", "--backend", backend, "--train", train, "--lora_rank", "8", "--lora_alpha", "16",
			"--finetune_epochs", "5", "--finetune_lr", "1e-2", "--max_seq_length", "32", "--seed", "1", "--save_adapter", adapter)
		if err != nil {
			t.Fatalf("finetune --backend %s: %v\n%s", backend, err, errOut)
		}
		gen, errOut, err := run(t, "generate", "--backend", backend, "--prompt", "The lighthouse keeper", "--adapter", adapter, "--max_tokens", "12")
		if err != nil {
			t.Fatalf("generate --backend %s: %v\n%s", backend, err, errOut)
		}
		reply, errOut, err := run(t, "ttt", "--backend", backend, "--request", request,
			"--max_seq_length", "48", "--eval_max_tokens", "8", "--grader", "contains")
		if err != nil {
			t.Fatalf("ttt --backend %s: %v\n%s", backend, err, errOut)
		}
		// The step lines carry timings; the losses (4 decimals) must agree.
		var losses []string
		for _, line := range strings.Split(tuned, "\n") {
			if f := strings.Fields(line); len(f) > 5 && f[0] == "step" && f[4] == "loss" {
				losses = append(losses, f[5])
			}
		}
		outputs[backend] = [3]string{strings.Join(losses, " "), gen, reply}
	}
	for i, what := range []string{"finetune losses", "generate", "ttt reply"} {
		if c, m := outputs["cpu"][i], outputs["metal"][i]; c != m || c == "" {
			t.Errorf("%s: cpu %q, metal %q", what, c, m)
		}
	}
}

// TestAutoBackend: auto takes the CPU off a Mac and says why; metal runs
// there on the emulator and says so.
func TestAutoBackend(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("on a Mac, auto depends on the GPU; doctor reports it")
	}
	b, why, err := openBackend("auto")
	if err != nil || b.Name() != "cpu" || !strings.Contains(why, "no Apple GPU") {
		t.Errorf("auto: %v %q %v", b, why, err)
	}
	b, why, err = openBackend("metal")
	if err != nil || b.Name() != "metal" || !strings.Contains(why, "emulator") {
		t.Errorf("metal: %v %q %v", b, why, err)
	}
}
