package hf_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// etag is the hub's ETag for a file: the sha256 of an LFS file, the git
// blob sha1 of any other.
func etag(name string, b []byte) string {
	if strings.HasSuffix(name, ".safetensors") {
		return sha(b)
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
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

// TestDownloadResume: a transfer cut midway, or left partial by an earlier
// run, continues from where it stopped with a range request.
func TestDownloadResume(t *testing.T) {
	const shard = "model-00001-of-00002.safetensors"
	for _, tc := range []struct {
		name    string
		cut     bool // the server drops the connection midway once
		partial bool // an earlier run left the first half on disk
	}{{"cut", true, false}, {"partial", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, files, _, h := newHub(t)
			data := files[shard]
			half := int64(len(data) / 2)
			blob := filepath.Join(h.Cache, "models--Org--Tiny", "blobs", sha(data))
			if tc.cut {
				srv.CutAfter[shard] = half
			}
			if tc.partial {
				os.MkdirAll(filepath.Dir(blob), 0o755)
				os.WriteFile(blob+".incomplete", data[:half], 0o644)
			}
			snap, err := h.Download(context.Background(), mustID(t, tinyID))
			if err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, snap, files)
			var sent int64
			var ranges []string
			for _, r := range srv.Log() {
				if strings.HasPrefix(r.Path, "/blobs/"+sha(data)) && r.Method == "GET" {
					sent += r.Sent
					ranges = append(ranges, r.Range)
				}
			}
			want := []string{"", fmt.Sprintf("bytes=%d-", half)}
			if tc.partial {
				want = want[1:]
			}
			if !slices.Equal(ranges, want) {
				t.Errorf("requests for the shard had ranges %q, want %q", ranges, want)
			}
			if wantSent := int64(len(data)) - half*btoi(tc.partial); sent != wantSent {
				t.Errorf("storage sent %d bytes of the shard, want %d (no byte twice)", sent, wantSent)
			}
			if _, err := os.Stat(blob + ".incomplete"); err == nil {
				t.Error("the .incomplete file is still there")
			}
		})
	}
}

func btoi(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestDownloadHashMismatch: a file whose bytes do not match the hub's hash
// (sha256 for LFS files, git blob sha1 for others) is refused, and nothing
// of it reaches blobs/ or the snapshot.
func TestDownloadHashMismatch(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"model-00002-of-00002.safetensors", "sha256 of the downloaded bytes"},
		{"config.json", "git blob sha1 of the downloaded bytes"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			srv, files, commit, h := newHub(t)
			srv.Corrupt[tc.file] = true
			_, err := h.Download(context.Background(), mustID(t, tinyID))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("error %v, want one naming %s and saying %q", err, tc.file, tc.want)
			}
			repo := filepath.Join(h.Cache, "models--Org--Tiny")
			blob := filepath.Join(repo, "blobs", etag(tc.file, files[tc.file]))
			for _, f := range []string{blob, blob + ".incomplete"} {
				if _, err := os.Stat(f); err == nil {
					t.Errorf("%s exists after the corrupt download", f)
				}
			}
			if _, err := os.Lstat(filepath.Join(repo, "snapshots", commit, tc.file)); err == nil {
				t.Error("the corrupt file is in the snapshot")
			}
			if _, err := h.Cached(mustID(t, tinyID)); err == nil {
				t.Error("the cache claims a complete copy")
			}
			// Once the hub serves the right bytes, the download completes.
			srv.Corrupt[tc.file] = false
			snap, err := h.Download(context.Background(), mustID(t, tinyID))
			if err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, snap, files)
		})
	}
}

// TestDownloadUnauthorized: a gated model answers 401; the error says to set
// HF_TOKEN and accept the licence, or that the token was refused.
func TestDownloadUnauthorized(t *testing.T) {
	for _, tc := range []struct{ token, want string }{
		{"", "set HF_TOKEN"},
		{"hf_wrong", "was refused"},
	} {
		srv, _, _, h := newHub(t)
		srv.Token = "hf_right"
		h.Token = tc.token
		_, err := h.Download(context.Background(), mustID(t, tinyID))
		if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("token %q: error %v, want a 401 saying %q", tc.token, err, tc.want)
		}
		if tc.token == "" && !strings.Contains(err.Error(), "Accept its licence at "+srv.URL+"/Org/Tiny") {
			t.Errorf("error %v does not point at the model's page", err)
		}
	}
}

// TestDownloadOffline: offline, a complete cached copy is used and nothing
// is asked of the hub; without one the error says downloads are off.
func TestDownloadOffline(t *testing.T) {
	srv, _, _, h := newHub(t)
	t.Setenv("HF_HUB_OFFLINE", "1")
	t.Setenv("HF_HUB_CACHE", h.Cache)
	t.Setenv("HF_ENDPOINT", srv.URL)
	off := hf.NewHub()
	if !off.Offline || off.Cache != h.Cache || off.Endpoint != srv.URL {
		t.Fatalf("NewHub with HF_HUB_OFFLINE=1: %+v", off)
	}
	for _, get := range []func() (string, error){
		func() (string, error) { return off.Resolve(context.Background(), tinyID) },
		func() (string, error) { return off.Download(context.Background(), mustID(t, tinyID)) },
	} {
		if _, err := get(); err == nil || !strings.Contains(err.Error(), "HF_HUB_OFFLINE=1") {
			t.Errorf("offline with an empty cache: error %v, want one saying downloads are off", err)
		}
	}
	if n := len(srv.Log()); n != 0 {
		t.Errorf("offline, the hub got %d requests", n)
	}
	snap, err := h.Download(context.Background(), mustID(t, tinyID))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if got, err := off.Resolve(context.Background(), tinyID); err != nil || got != snap {
		t.Errorf("offline with a cached copy: %q, %v; want %s", got, err, snap)
	}
	// A snapshot missing a shard is not a cached copy.
	os.Remove(filepath.Join(snap, "model-00002-of-00002.safetensors"))
	if _, err := off.Resolve(context.Background(), tinyID); err == nil || !strings.Contains(err.Error(), "model-00002-of-00002.safetensors is missing") {
		t.Errorf("offline with a shard missing: error %v", err)
	}
}

// TestDownloadConcurrent: two downloads of one model at once end with one
// correct copy, each blob fetched once (the second waits on the first's
// lock, then links the finished blob).
func TestDownloadConcurrent(t *testing.T) {
	srv, files, _, h := newHub(t)
	srv.Delay = 5 * time.Millisecond // about 200 ms for the big shard, so the two overlap
	var wg sync.WaitGroup
	snaps := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			h2 := *h
			snaps[i], errs[i] = h2.Download(context.Background(), mustID(t, tinyID))
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || snaps[0] != snaps[1] {
		t.Fatalf("downloads returned %q, %v", snaps, errs)
	}
	checkSnapshot(t, snaps[0], files)
	// Both asked for the big shard before its one transfer ended (requests
	// are logged when answered): the second waited on the first's lock.
	big := "model-00001-of-00002.safetensors"
	heads := 0
	for _, r := range srv.Log() {
		if r.Method == "HEAD" && strings.HasSuffix(r.Path, "/"+big) {
			heads++
		}
		if r.Path == pathOf(srv, big, files[big]) {
			break
		}
	}
	if heads != 2 {
		t.Errorf("%d of the two downloads asked for %s before its transfer ended; they did not overlap", heads, big)
	}
	sent := map[string]int64{}
	for _, r := range srv.Log() {
		if r.Method == "GET" {
			sent[r.Path] += r.Sent
		}
	}
	for _, f := range fetched {
		if n, want := sent[pathOf(srv, f, files[f])], int64(len(files[f])); n != want {
			t.Errorf("%s: %d bytes sent, want %d (once)", f, n, want)
		}
	}
}

// pathOf is where the test hub serves a file's bytes.
func pathOf(srv *hubtest.Server, name string, data []byte) string {
	if strings.HasSuffix(name, ".safetensors") {
		return "/blobs/" + sha(data)
	}
	return "/" + tinyID + "/resolve/" + srv.Commit(tinyID) + "/" + name
}

func TestParseModelID(t *testing.T) {
	for _, tc := range []struct{ in, repo, rev string }{
		{"Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B", "main"},
		{"meta-llama/Meta-Llama-3-8B-Instruct@refs/pr/1", "meta-llama/Meta-Llama-3-8B-Instruct", "refs/pr/1"},
		{"Org/Name@0123456789abcdef0123456789abcdef01234567", "Org/Name", "0123456789abcdef0123456789abcdef01234567"},
		{"Name", "", ""}, {"a/b/c", "", ""}, {"../x", "", ""}, {"Org/..", "", ""}, {"Org/N@", "", ""}, {"Org/N@../x", "", ""},
	} {
		id, err := hf.ParseModelID(tc.in)
		if (err == nil) != (tc.repo != "") || id.Repo != tc.repo || id.Revision != tc.rev {
			t.Errorf("ParseModelID(%q) = %+v, %v; want %s @ %s", tc.in, id, err, tc.repo, tc.rev)
		}
	}
}

// TestHubToken: HF_TOKEN wins; otherwise the file huggingface-cli login
// writes under HF_HOME, or the one HF_TOKEN_PATH names.
func TestHubToken(t *testing.T) {
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "token"), []byte("hf_from_file\n"), 0o600)
	other := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(other, []byte("hf_from_path"), 0o600)
	for _, tc := range []struct{ env, path, want string }{
		{"hf_from_env", "", "hf_from_env"},
		{"", "", "hf_from_file"},
		{"", other, "hf_from_path"},
	} {
		t.Setenv("HF_HOME", home)
		t.Setenv("HF_HUB_CACHE", "")
		t.Setenv("HF_TOKEN", tc.env)
		t.Setenv("HF_TOKEN_PATH", tc.path)
		h := hf.NewHub()
		if h.Token != tc.want || h.Cache != filepath.Join(home, "hub") {
			t.Errorf("HF_TOKEN=%q HF_TOKEN_PATH=%q: token %q, cache %s; want %q in %s", tc.env, tc.path, h.Token, h.Cache, tc.want, filepath.Join(home, "hub"))
		}
	}
}
