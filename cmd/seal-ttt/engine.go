package main

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/gpu"
	"github.com/goseal/ttt/kernels"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/server"
	"github.com/goseal/ttt/tokenizer"
)

// builtinName is how the built-in demo model is named in logs and adapters.
const builtinName = "seal-ttt/builtin-demo"

// openModel loads the model named by modelFlag (a local folder or a Hugging
// Face id, downloaded on first use; "" means the built-in demo model) on the
// named backend, and its tokenizer when withTokenizer (nil otherwise), with a
// one-line description.
func openModel(modelFlag, backend string, withTokenizer bool) (*nn.Model, *tokenizer.Tokenizer, string, error) {
	b, why, err := openBackend(backend)
	if err != nil {
		return nil, nil, "", err
	}
	if modelFlag == "" {
		m := nn.Builtin(b)
		c := m.Config
		return m, tokenizer.Bytes(), fmt.Sprintf("%s (built-in demo model: %d layers, hidden %d, byte vocabulary; untrained, for demos and tests) on %s (%s)", builtinName, c.Layers, c.Hidden, b.Name(), why), nil
	}
	dir, err := resolveModel(modelFlag)
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
	return m, tok, fmt.Sprintf("%s (%s: %d layers, hidden %d, vocab %d) on %s (%s)", modelFlag, c.Arch, c.Layers, c.Hidden, c.VocabSize, b.Name(), why), nil
}

// backendUsage is the help text of every command's --backend flag.
const backendUsage = "compute backend: auto (metal on an Apple7+ GPU, else cpu), cpu, or metal (off a Mac: the MSL emulator, slow, for verification)"

// openBackend returns the compute backend named by the --backend flag and
// why it is the one: "auto" (or "") takes metal on an Apple GPU of family 7
// or later and the CPU otherwise; "metal" off darwin runs the kernels on the
// MSL emulator.
func openBackend(name string) (nn.Backend, string, error) {
	switch name {
	case "cpu":
		return cpu.Backend{}, "asked for", nil
	case "metal":
		// The emulator's race detector is for tests; commands run without it.
		b, err := gpu.Open(metal.CompileOptions{NoRaceDetector: true})
		if err != nil {
			return nil, "", fmt.Errorf("backend metal: %w", err)
		}
		if runtime.GOOS != "darwin" {
			return b, "asked for; no Apple GPU here, so the kernels run on the MSL emulator (slow, for verification)", nil
		}
		return b, "asked for: " + b.Device().Name(), nil
	case "", "auto":
		if runtime.GOOS != "darwin" {
			return cpu.Backend{}, "auto: no Apple GPU on this machine", nil
		}
		dev, err := metal.Open()
		if err != nil {
			return cpu.Backend{}, fmt.Sprintf("auto: no Metal device (%v)", err), nil
		}
		if f := dev.Family(); f < matrixFamily {
			dev.Close()
			return cpu.Backend{}, fmt.Sprintf("auto: %s is not an Apple7 or later GPU (family %d); the kernels need simdgroup matrices", dev.Name(), f), nil
		}
		lib, err := kernels.Load(dev, metal.CompileOptions{})
		if err != nil {
			dev.Close()
			return cpu.Backend{}, fmt.Sprintf("auto: the kernels did not compile for %s (%v); run `seal-ttt doctor`", dev.Name(), err), nil
		}
		return gpu.New(dev, lib), fmt.Sprintf("auto: %s, Apple GPU family %d", dev.Name(), dev.Family()), nil
	}
	return nil, "", fmt.Errorf("unknown backend %q (want auto, cpu or metal)", name)
}

// deviceBudget is the default memory limit on a Mac's GPU: Metal's
// recommended working set, which the weights' no-copy buffers count
// against; 0 (the server's default share of physical memory) elsewhere,
// the emulator included.
func deviceBudget(b nn.Backend) int64 {
	if g, ok := b.(*gpu.Backend); ok && runtime.GOOS == "darwin" {
		return int64(g.Device().RecommendedWorkingSet())
	}
	return 0
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
	if maxMemory == 0 {
		maxMemory = deviceBudget(m.B)
	}
	e, err := server.NewEngine(m, tok, modelName(modelFlag), maxMemory, log)
	if err != nil {
		return nil, "", err
	}
	return e, desc, nil
}
