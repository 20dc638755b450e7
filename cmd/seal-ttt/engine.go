package main

import (
	"fmt"
	"log/slog"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/server"
	"github.com/goseal/ttt/tokenizer"
)

// builtinName is how the built-in demo model is named in logs and adapters.
const builtinName = "seal-ttt/builtin-demo"

// openModel loads the model named by modelFlag (a local folder or a Hugging
// Face id in the local cache; "" means the built-in demo model) on the named
// backend, and its tokenizer when withTokenizer (nil otherwise), with a
// one-line description.
func openModel(modelFlag, backend string, withTokenizer bool) (*nn.Model, *tokenizer.Tokenizer, string, error) {
	var b nn.Backend
	switch backend {
	case "", "cpu":
		b = cpu.Backend{}
	case "metal":
		return nil, nil, "", fmt.Errorf("backend metal: the Metal kernels run in `seal-ttt doctor`, but the transformer does not run on them yet; use --backend cpu")
	default:
		return nil, nil, "", fmt.Errorf("unknown backend %q (want cpu or metal)", backend)
	}
	if modelFlag == "" {
		m := nn.Builtin(b)
		c := m.Config
		return m, tokenizer.Bytes(), fmt.Sprintf("%s (built-in demo model: %d layers, hidden %d, byte vocabulary; untrained, for demos and tests) on %s", builtinName, c.Layers, c.Hidden, b.Name()), nil
	}
	dir, err := hf.ResolveModel(modelFlag)
	if err != nil {
		return nil, nil, "", err
	}
	var tok *tokenizer.Tokenizer
	if withTokenizer {
		if tok, err = tokenizer.Load(dir); err != nil {
			return nil, nil, "", err
		}
	}
	m, err := nn.Load(dir, b)
	if err != nil {
		return nil, nil, "", err
	}
	c := m.Config
	return m, tok, fmt.Sprintf("%s (%s: %d layers, hidden %d, vocab %d) on %s", modelFlag, c.Arch, c.Layers, c.Hidden, c.VocabSize, b.Name()), nil
}

// modelName is what saved adapters record as their base model.
func modelName(modelFlag string) string {
	if modelFlag == "" {
		return builtinName
	}
	return modelFlag
}

// loadModel loads the model named by modelFlag (a local directory or a
// Hugging Face id; "" means the built-in demo model) on backend ("" means the
// CPU) and returns it as the TTT cycle sees it, planning requests within
// maxMemory bytes (0: the default share of this machine's memory), with a
// one-line description for the startup log; log receives the model's warnings.
func loadModel(modelFlag, backend string, maxMemory int64, log *slog.Logger) (*server.Engine, string, error) {
	m, tok, desc, err := openModel(modelFlag, backend, true)
	if err != nil {
		return nil, "", err
	}
	e, err := server.NewEngine(m, tok, modelName(modelFlag), maxMemory, log)
	if err != nil {
		return nil, "", err
	}
	return e, desc, nil
}
