package hf

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig: any config.json gives a config or an error, never a
// panic, and an accepted config is usable (InvFreq and shapes are defined).
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"qwen2_tied", "qwen2_untied", "llama3"} {
		data, err := os.ReadFile(filepath.Join("../nn/testdata", "models", name, "f32", "config.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"model_type":"qwen2","vocab_size":1,"hidden_size":2,"intermediate_size":1,"num_hidden_layers":1,"num_attention_heads":1,"eos_token_id":[0]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if len(c.InvFreq()) != c.HeadDim/2 || c.Heads%c.KVHeads != 0 {
			t.Fatalf("accepted an inconsistent config %+v", c)
		}
	})
}

// FuzzSafetensorsHeader: any file contents give tensors or an error, never a
// panic, and every accepted tensor lies inside the file.
func FuzzSafetensorsHeader(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("../nn/testdata", "models", "qwen2_tied", "golden.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data)
	f.Add(data[:8+n+64])
	f.Add(append([]byte{16, 0, 0, 0, 0, 0, 0, 0}, `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`...))
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		w := &Weights{tensors: map[string]*StoredTensor{}}
		if err := w.index("fuzz.safetensors", data, nil); err != nil {
			return
		}
		for _, st := range w.tensors {
			n := st.DType.Size()
			for _, s := range st.Shape {
				n *= s
			}
			if n != len(st.Data) {
				t.Fatalf("tensor %q: %d bytes for shape %v", st.Name, len(st.Data), st.Shape)
			}
		}
	})
}
