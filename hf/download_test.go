package hf_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/hf/hubtest"
	"github.com/goseal/ttt/nn"
)

const tinyID = "Org/Tiny"

// fetched are the files the program needs from the tiny repository; the
// .bin and .gguf beside them must never be asked for.
var fetched = []string{"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
	"model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json"}

// newHub starts a hub serving the tiny model and returns it, its files, its
// commit and a Hub pointed at it with an empty cache.
func newHub(t *testing.T) (*hubtest.Server, map[string][]byte, string, *hf.Hub) {
	t.Helper()
	tok, err := os.ReadFile("../tokenizer/testdata/synthetic/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	files, err := hubtest.TinyModel(tok)
	if err != nil {
		t.Fatal(err)
	}
	srv := hubtest.NewServer()
	t.Cleanup(srv.Close)
	commit := srv.Add(tinyID, files)
	return srv, files, commit, &hf.Hub{Endpoint: srv.URL, Cache: t.TempDir()}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustID(t *testing.T, s string) hf.ModelID {
	t.Helper()
	id, err := hf.ParseModelID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// checkSnapshot checks that snap holds exactly the needed files, each a
// relative link into blobs/ with the served content.
func checkSnapshot(t *testing.T, snap string, files map[string][]byte) {
	t.Helper()
	ents, err := os.ReadDir(snap)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		target, err := os.Readlink(filepath.Join(snap, e.Name()))
		if err != nil || !strings.HasPrefix(target, filepath.Join("..", "..", "blobs")+string(filepath.Separator)) {
			t.Errorf("%s: link %q, %v; want a relative link into ../../blobs", e.Name(), target, err)
		}
		got, err := os.ReadFile(filepath.Join(snap, e.Name()))
		if err != nil || !bytes.Equal(got, files[e.Name()]) {
			t.Errorf("%s: content differs from the hub's (%v)", e.Name(), err)
		}
	}
	if !slices.Equal(names, fetched) {
		t.Errorf("snapshot holds %q, want %q", names, fetched)
	}
}

// generate loads the model in dir on the CPU and greedily continues a prompt.
func generate(t *testing.T, dir string) []int32 {
	t.Helper()
	m, err := nn.Load(dir, cpu.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out, err := m.Generate(context.Background(), [][]int32{{5, 6, 7}}, nil, nn.GenerateOptions{MaxNewTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func TestDownloadLoadGenerate(t *testing.T) {
	srv, files, commit, h := newHub(t)
	srv.Token = "hf_secret"
	h.Token = "hf_secret"
	var prog bytes.Buffer
	h.Progress = &prog
	snap, err := h.Download(context.Background(), mustID(t, tinyID))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(h.Cache, "models--Org--Tiny", "snapshots", commit); snap != want {
		t.Errorf("snapshot %s, want %s", snap, want)
	}
	if ref, err := os.ReadFile(filepath.Join(h.Cache, "models--Org--Tiny", "refs", "main")); err != nil || string(ref) != commit {
		t.Errorf("refs/main = %q, %v; want %s", ref, err, commit)
	}
	checkSnapshot(t, snap, files)
	for _, r := range srv.Log() {
		if strings.HasSuffix(r.Path, ".bin") || strings.HasSuffix(r.Path, ".gguf") {
			t.Errorf("asked for %s", r.Path)
		}
		if strings.HasPrefix(r.Path, "/blobs/") && r.Auth {
			t.Errorf("the token went to storage: %s", r.Path)
		}
	}
	weights := int64(len(files["model-00001-of-00002.safetensors"]) + len(files["model-00002-of-00002.safetensors"]))
	if !strings.Contains(prog.String(), fmt.Sprintf("downloaded Org/Tiny: %d of %d bytes", weights, weights)) {
		t.Errorf("progress lines %q do not report the %d weight bytes", prog.String(), weights)
	}

	// The downloaded model generates what the same files do from a folder.
	local := t.TempDir()
	for n, d := range files {
		os.WriteFile(filepath.Join(local, n), d, 0o644)
	}
	got, want := generate(t, snap), generate(t, local)
	if len(got) != 6 || !slices.Equal(got, want) {
		t.Errorf("downloaded model generated %v, the local copy %v", got, want)
	}

	// Next time the cache answers: the hub is not asked at all.
	srv.Close()
	again, err := h.Resolve(context.Background(), tinyID)
	if err != nil || again != snap {
		t.Errorf("Resolve after download = %q, %v; want %s from the cache", again, err, snap)
	}
}
