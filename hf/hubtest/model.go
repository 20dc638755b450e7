package hubtest

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/goseal/ttt/hf"
	"github.com/nlpodyssey/safetensors"
)

// TinyConfig is a two-layer llama small enough to download in a test.
var TinyConfig = hf.Config{Arch: "llama", VocabSize: 520, Hidden: 32, Intermediate: 64, Layers: 2, Heads: 4, KVHeads: 2,
	HeadDim: 8, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositions: 256, BOS: -1, EOS: []int{1}}

// TinyModel returns the files of a repository holding TinyConfig with weights
// from hf.RandomWeights, in float32, as two safetensors shards named by
// model.safetensors.index.json, with tokenizerJSON as tokenizer.json. Files
// the program must never fetch sit beside them: a pytorch_model.bin and a
// .gguf.
func TinyModel(tokenizerJSON []byte) (map[string][]byte, error) {
	cfg := TinyConfig
	w := hf.RandomWeights(&cfg, 1)
	shards := [2]map[string]safetensors.TensorView{{}, {}}
	index := map[string]string{}
	for _, name := range w.Names() {
		st, _ := w.Lookup(name)
		shape := make([]uint64, len(st.Shape))
		for i, s := range st.Shape {
			shape[i] = uint64(s)
		}
		v, err := safetensors.NewTensorView(safetensors.F32, shape, st.Data)
		if err != nil {
			return nil, err
		}
		k := 0
		if strings.HasPrefix(name, "model.layers.1.") {
			k = 1
		}
		shards[k][name] = v
		index[name] = fmt.Sprintf("model-%05d-of-00002.safetensors", k+1)
	}
	files := map[string][]byte{"tokenizer.json": tokenizerJSON, "pytorch_model.bin": []byte("not for us"), "model.Q4_K_M.gguf": []byte("not for us")}
	for k, views := range shards {
		data, err := safetensors.Serialize(views, nil)
		if err != nil {
			return nil, err
		}
		files[fmt.Sprintf("model-%05d-of-00002.safetensors", k+1)] = data
	}
	var err error
	if files["model.safetensors.index.json"], err = json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": index}); err != nil {
		return nil, err
	}
	files["config.json"], err = json.Marshal(map[string]any{
		"model_type": cfg.Arch, "vocab_size": cfg.VocabSize, "hidden_size": cfg.Hidden,
		"intermediate_size": cfg.Intermediate, "num_hidden_layers": cfg.Layers,
		"num_attention_heads": cfg.Heads, "num_key_value_heads": cfg.KVHeads, "head_dim": cfg.HeadDim,
		"rms_norm_eps": cfg.RMSNormEps, "rope_theta": cfg.RopeTheta, "tie_word_embeddings": false,
		"max_position_embeddings": cfg.MaxPositions, "eos_token_id": cfg.EOS[0],
	})
	if err != nil {
		return nil, err
	}
	files["generation_config.json"] = []byte(`{"eos_token_id": 1, "temperature": 0.7}`)
	return files, nil
}
