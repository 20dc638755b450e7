package nn_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
	"github.com/nlpodyssey/safetensors"
)

// writeModel writes cfg and weights drawn by hf.RandomWeights as a Hugging Face
// folder (config.json + model.safetensors) and returns the file's size.
func writeModel(t testing.TB, dir string, cfg *hf.Config) int64 {
	t.Helper()
	w := hf.RandomWeights(cfg, 1)
	views := map[string]safetensors.TensorView{}
	for _, name := range w.Names() {
		st, _ := w.Lookup(name)
		shape := make([]uint64, len(st.Shape))
		for i, s := range st.Shape {
			shape[i] = uint64(s)
		}
		v, err := safetensors.NewTensorView(safetensors.F32, shape, st.Data)
		if err != nil {
			t.Fatal(err)
		}
		views[name] = v
	}
	data, err := safetensors.Serialize(views, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(map[string]any{
		"model_type": cfg.Arch, "vocab_size": cfg.VocabSize, "hidden_size": cfg.Hidden,
		"intermediate_size": cfg.Intermediate, "num_hidden_layers": cfg.Layers,
		"num_attention_heads": cfg.Heads, "num_key_value_heads": cfg.KVHeads,
		"rms_norm_eps": cfg.RMSNormEps, "rope_theta": cfg.RopeTheta, "tie_word_embeddings": cfg.TieEmbeddings,
		"max_position_embeddings": cfg.MaxPositions, "eos_token_id": cfg.EOS,
	})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	return int64(len(data))
}

// rssBytes reads the resident set size from /proc (0 where there is none).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func heapBytes() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestLoadMapsWeights loads a 100+ MB float32 model and checks that the Go
// heap does not grow by the file: the CPU backend reads f32 weights in place
// from the memory map.
func TestLoadMapsWeights(t *testing.T) {
	cfg := &hf.Config{Arch: "llama", VocabSize: 8192, Hidden: 768, Intermediate: 2048, Layers: 4, Heads: 12, KVHeads: 12,
		HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositions: 2048, BOS: -1, EOS: []int{0}}
	dir := t.TempDir()
	size := writeModel(t, dir, cfg)
	heap0, rss0 := heapBytes(), rssBytes()
	m, err := nn.Load(dir, cpu.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Touch every weight, as a forward pass would.
	logits, err := m.Logits(seqBatch([]int32{1, 2, 3}), nil, nil)
	if err != nil || len(logits) != 3*cfg.VocabSize {
		t.Fatal(err)
	}
	heap1, rss1 := heapBytes(), rssBytes()
	t.Logf("file %d MB; after load and a forward pass: heap +%.1f MB, RSS +%.1f MB (file pages mapped, not copied)",
		size>>20, float64(heap1-heap0)/(1<<20), float64(rss1-rss0)/(1<<20))
	// The model's own heap is the rotary table and the forward pass's
	// buffers, a few MB; a copy of the weights would be the whole file.
	if grow := heap1 - heap0; grow > size/10 {
		t.Errorf("the heap grew by %d bytes loading a %d-byte model", grow, size)
	}
	runtime.KeepAlive(m)
}

// TestLoadErrors: every broken model folder gives an error that names the
// file and the problem.
func TestLoadErrors(t *testing.T) {
	src := filepath.Join("testdata", "models", "qwen2_tied", "f32")
	cfgData, _ := os.ReadFile(filepath.Join(src, "config.json"))
	st, _ := os.ReadFile(filepath.Join(src, "model.safetensors"))
	n := binary.LittleEndian.Uint64(st)
	header := string(st[8 : 8+n])
	withHeader := func(h string) []byte {
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(out, h...), st[8+n:]...)
	}
	cases := []struct {
		name    string
		config  string
		weights []byte
		want    string
	}{
		{"no config", "", st, "config.json"},
		{"bad json", "{", st, "not a valid config.json"},
		{"unsupported arch", strings.Replace(string(cfgData), `"qwen2"`, `"gpt2"`, 1), st, `unsupported model_type "gpt2"`},
		{"missing field", strings.Replace(string(cfgData), `"hidden_size"`, `"hidden"`, 1), st, "hidden_size is missing"},
		{"no weights", string(cfgData), nil, "model.safetensors is missing"},
		{"truncated file", string(cfgData), st[:len(st)-100], "invalid safetensors"},
		{"lying header", string(cfgData), withHeader(strings.Replace(header, `"shape":[64]`, `"shape":[65]`, 1)), "invalid safetensors"},
		{"missing tensor", string(cfgData), withHeader(strings.Replace(header, "model.norm.weight", "model.norm.weigh", 1)), `tensor "model.norm.weight" is missing`},
		{"wrong shape", strings.Replace(string(cfgData), `"vocab_size": 512`, `"vocab_size": 256`, 1), st, "has shape [512 64], want [256 64]"},
		{"unsupported dtype", string(cfgData), withHeader(strings.Replace(header, `"F32"`, `"I32"`, 1)), "unsupported dtype"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.config != "" {
				os.WriteFile(filepath.Join(dir, "config.json"), []byte(c.config), 0o644)
			}
			if c.weights != nil {
				os.WriteFile(filepath.Join(dir, "model.safetensors"), c.weights, 0o644)
			}
			_, err := nn.Load(dir, cpu.Backend{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestResolveModel(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	snap := filepath.Join(cache, "models--Org--Tiny", "snapshots", "abc123")
	os.MkdirAll(snap, 0o755)
	os.MkdirAll(filepath.Join(cache, "models--Org--Tiny", "refs"), 0o755)
	os.WriteFile(filepath.Join(cache, "models--Org--Tiny", "refs", "main"), []byte("abc123\n"), 0o644)
	if got, err := hf.ResolveModel("Org/Tiny"); err != nil || got != snap {
		t.Errorf("hf.ResolveModel(Org/Tiny) = %q, %v; want %q", got, err, snap)
	}
	if got, err := hf.ResolveModel(cache); err != nil || got != cache {
		t.Errorf("a folder resolves to itself: %q, %v", got, err)
	}
	for _, bad := range []string{"Org/Missing", "not-an-id", "a/b/c"} {
		if _, err := hf.ResolveModel(bad); err == nil {
			t.Errorf("hf.ResolveModel(%q) succeeded", bad)
		}
	}
}
