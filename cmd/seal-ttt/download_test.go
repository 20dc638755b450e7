package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goseal/ttt/hf/hubtest"
)

// tinyHub serves the tiny model as Org/Tiny and points the environment (which
// the subprocesses inherit) at it, with an empty cache and no token.
func tinyHub(t *testing.T) (*hubtest.Server, string) {
	t.Helper()
	tok, err := os.ReadFile("../../tokenizer/testdata/synthetic/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	files, err := hubtest.TinyModel(tok)
	if err != nil {
		t.Fatal(err)
	}
	srv := hubtest.NewServer()
	t.Cleanup(srv.Close)
	srv.Add("Org/Tiny", files)
	cache := t.TempDir()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HOME", t.TempDir())
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	return srv, cache
}

// TestDownloadCommand: `download` prints the snapshot folder, then generate
// uses the cached copy offline.
func TestDownloadCommand(t *testing.T) {
	srv, cache := tinyHub(t)
	stdout, stderr, err := run(t, "download", "Org/Tiny")
	want := filepath.Join(cache, "models--Org--Tiny", "snapshots", srv.Commit("Org/Tiny"))
	if err != nil || strings.TrimSpace(stdout) != want {
		t.Fatalf("download: %v, stdout %q, want %s; stderr:\n%s", err, stdout, want, stderr)
	}
	// Not a terminal: plain progress lines.
	if !strings.Contains(stderr, "downloading Org/Tiny: ") || !strings.Contains(stderr, "downloaded Org/Tiny: ") {
		t.Errorf("stderr has no progress lines:\n%s", stderr)
	}
	srv.Close()
	for _, args := range [][]string{
		{"generate", "--offline", "--model", "Org/Tiny", "--prompt", "abc", "--max_tokens", "3"},
		{"download", "--offline", "Org/Tiny"},
	} {
		if stdout, stderr, err := run(t, args...); err != nil || stdout == "" {
			t.Errorf("%s with the hub gone: %v, stdout %q, stderr:\n%s", args, err, stdout, stderr)
		}
	}
}

// TestResolveFirstUse: a command given --model ORG/NAME downloads it on
// first use, unless --offline or HF_HUB_OFFLINE=1 forbids it.
func TestResolveFirstUse(t *testing.T) {
	srv, _ := tinyHub(t)
	gen := []string{"generate", "--model", "Org/Tiny", "--prompt", "abc", "--max_tokens", "3"}
	if _, stderr, err := run(t, append(gen, "--offline")...); err == nil || !strings.Contains(stderr, "downloads are off") {
		t.Errorf("--offline with an empty cache: %v, stderr:\n%s", err, stderr)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	if _, stderr, err := run(t, gen...); err == nil || !strings.Contains(stderr, "HF_HUB_OFFLINE=1") {
		t.Errorf("HF_HUB_OFFLINE=1 with an empty cache: %v, stderr:\n%s", err, stderr)
	}
	if n := len(srv.Log()); n != 0 {
		t.Errorf("offline, the hub got %d requests", n)
	}
	t.Setenv("HF_HUB_OFFLINE", "")
	stdout, stderr, err := run(t, gen...)
	if err != nil || stdout == "" || !strings.Contains(stderr, "downloaded Org/Tiny") {
		t.Errorf("first use: %v, stdout %q, stderr:\n%s", err, stdout, stderr)
	}
}

// TestDownloadTwoProcesses: two processes downloading one model at once end
// with one copy, each file sent once.
func TestDownloadTwoProcesses(t *testing.T) {
	srv, _ := tinyHub(t)
	srv.Delay = 2 * time.Millisecond // about 100 ms for the big shard, so the two overlap
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { outs[i], _, errs[i] = run(t, "download", "Org/Tiny") })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || outs[0] != outs[1] || outs[0] == "" {
		t.Fatalf("downloads: %q, %v", outs, errs)
	}
	sent := map[string]int64{}
	for _, r := range srv.Log() {
		sent[r.Path] += r.Sent
	}
	snap := strings.TrimSpace(outs[0])
	ents, _ := os.ReadDir(snap)
	if len(ents) != 6 {
		t.Errorf("snapshot holds %d files, want 6", len(ents))
	}
	for _, e := range ents {
		st, err := os.Stat(filepath.Join(snap, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		target, _ := os.Readlink(filepath.Join(snap, e.Name()))
		var got int64
		for p, n := range sent {
			if strings.HasSuffix(p, "/"+e.Name()) || strings.HasSuffix(p, "/"+filepath.Base(target)) {
				got += n
			}
		}
		if got != st.Size() {
			t.Errorf("%s: %d bytes sent for a %d-byte file, want each byte once", e.Name(), got, st.Size())
		}
	}
}
