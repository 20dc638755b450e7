package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gozmq "github.com/go-zeromq/zmq4"

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
		{[]string{"--baseline_cache", "-1"}, "--baseline_cache must be >= 0"},
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

// TestMain lets the tests run this test binary as seal-ttt itself.
func TestMain(m *testing.M) {
	if os.Getenv("SEAL_TTT_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syncBuffer collects a subprocess's stderr while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor waits until the buffer contains s.
func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(b.String(), s) {
			return
		}
	}
	t.Fatalf("no %q in the log:\n%s", s, b.String())
}

// seal starts this binary as `seal-ttt args...`.
func seal(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SEAL_TTT_RUN_MAIN=1", "OPENAI_API_KEY=")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stderr
}

// waitExit waits for cmd to exit and fails unless its status is 0.
func waitExit(t *testing.T, cmd *exec.Cmd, stderr *syncBuffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("seal-ttt exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("seal-ttt did not exit\n%s", stderr.String())
	}
}

// freePort returns a TCP port free on the loopback interface.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// serveArgs runs the built-in model with small, quick settings.
func serveArgs(port string) []string {
	return []string{"serve", "--zmq_host", "127.0.0.1", "--zmq_port", port, "--grader", "contains",
		"--max_seq_length", "64", "--padding", "longest", "--eval_max_tokens", "8", "--log_format", "json"}
}

const smallRequest = `{"train_sequences": ["Ada lives in Brindle.", "Ada's cat is Pim."],
	"eval_questions": [{"title": "Ada", "context": "", "question": "Topic: Ada\nWhere does Ada live?", "answer": "Brindle"},
		{"title": "Ada", "context": "", "question": "Topic: Ada\nWhat is Ada's cat called?", "answer": "Pim"}],
	"lora_rank": 4, "lora_alpha": 8, "finetune_epochs": 1, "seed": 3}`

// TestServeWithSEALClient runs `seal-ttt serve` on the built-in model and
// drives it with the Python client that behaves as SEAL's query_server.py.
func TestServeWithSEALClient(t *testing.T) {
	port := freePort(t)
	cmd, stderr := seal(t, serveArgs(port)...)
	stderr.waitFor(t, `"msg":"listening"`)
	script := `[{"op": "round_trip", "payload": ` + smallRequest + `},
		{"op": "round_trip", "payload": {"eval_questions": [{"question": "q?"}]}},
		{"op": "shutdown"}]`
	python := "/usr/bin/python3" // Debian's, with python3-zmq (`make deps`)
	if p := os.Getenv("SEAL_TTT_PYTHON"); p != "" {
		python = p
	}
	client := exec.Command(python, "../../server/testdata/seal_client.py", "tcp://127.0.0.1:"+port, "60000")
	client.Stdin = strings.NewReader(script)
	out, err := client.Output()
	if err != nil {
		t.Fatalf("client: %v\n%s\n%s", err, out, stderr.String())
	}
	var results []struct {
		Reply   map[string]any
		Raised  string
		Printed []string
	}
	if err := json.Unmarshal(out, &results); err != nil || len(results) != 3 {
		t.Fatalf("client output %s (%v)", out, err)
	}
	keys := []string{"adapter_accuracy", "adapter_correct", "adapter_gain", "adapter_texts", "baseline_accuracy", "baseline_correct", "baseline_texts", "gains"}
	var got []string
	for k, v := range results[0].Reply {
		got = append(got, k)
		if l, ok := v.([]any); ok && len(l) != 2 {
			t.Errorf("%s has %d entries, want 2", k, len(l))
		}
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, keys) {
		t.Errorf("reply keys %v, want %v", got, keys)
	}
	if results[1].Raised == "" || len(results[1].Printed) != 2 || !strings.Contains(results[1].Printed[0], "KeyError: 'answer'") {
		t.Errorf("bad request: %+v", results[1])
	}
	if !reflect.DeepEqual(results[2].Reply, map[string]any{"status": "bye"}) {
		t.Errorf("shutdown reply %v", results[2].Reply)
	}
	waitExit(t, cmd, stderr)
	if !strings.Contains(stderr.String(), `"msg":"request"`) || !strings.Contains(stderr.String(), `"train_s"`) {
		t.Errorf("no request log line:\n%s", stderr.String())
	}
}

// TestServeSignals checks that SIGINT while idle and SIGTERM mid-request
// stop the server with exit status 0, the interrupted client getting an
// error reply.
func TestServeSignals(t *testing.T) {
	t.Run("SIGINT idle", func(t *testing.T) {
		cmd, stderr := seal(t, serveArgs(freePort(t))...)
		stderr.waitFor(t, `"msg":"listening"`)
		cmd.Process.Signal(syscall.SIGINT)
		waitExit(t, cmd, stderr)
	})
	t.Run("SIGTERM mid-request", func(t *testing.T) {
		port := freePort(t)
		cmd, stderr := seal(t, serveArgs(port)...)
		stderr.waitFor(t, `"msg":"listening"`)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := gozmq.NewReq(ctx)
		defer req.Close()
		if err := req.Dial("tcp://127.0.0.1:" + port); err != nil {
			t.Fatal(err)
		}
		long := strings.Replace(smallRequest, `"finetune_epochs": 1`, `"finetune_epochs": 100000`, 1)
		if err := req.Send(gozmq.NewMsgString(long)); err != nil {
			t.Fatal(err)
		}
		stderr.waitFor(t, `"msg":"training"`)
		cmd.Process.Signal(syscall.SIGTERM)
		reply := make(chan string, 1)
		go func() {
			msg, err := req.Recv()
			if err != nil {
				reply <- err.Error()
				return
			}
			reply <- string(msg.Frames[0])
		}()
		select {
		case r := <-reply:
			if r != `{"error":"KeyboardInterrupt: the server is shutting down; the request was abandoned"}` {
				t.Errorf("reply %s", r)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("no reply\n%s", stderr.String())
		}
		waitExit(t, cmd, stderr)
	})
}

func TestTTTCommand(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.json"), filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(smallRequest), 0o644)
	os.WriteFile(bad, []byte(`{"lora_rank": 0}`), 0o644)
	for _, tt := range []struct {
		file    string
		wantErr bool
		want    string
	}{
		{good, false, `"baseline_accuracy":`},
		{bad, true, `{"error":"ValueError: lora_rank = 0 is out of range: it must be between 1 and 4096"}`},
	} {
		cmd := exec.Command(os.Args[0], "ttt", "--request", tt.file, "--grader", "contains", "--max_seq_length", "64", "--padding", "longest", "--eval_max_tokens", "8")
		cmd.Env = append(os.Environ(), "SEAL_TTT_RUN_MAIN=1")
		out, err := cmd.Output()
		if (err != nil) != tt.wantErr || !strings.HasPrefix(string(out), "{") || !strings.Contains(string(out), tt.want) {
			t.Errorf("ttt %s: %v, stdout %s, want %s", filepath.Base(tt.file), err, out, tt.want)
		}
	}
}
