// Command peftsave writes a LoRA adapter with seeded, non-zero weights in
// PEFT format for a model folder, so that tools/golden/peft_roundtrip.py can
// load it with PEFT and record the adapted model's logits.
//
// Usage: peftsave MODEL_DIR OUT_DIR
package main

import (
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/nn"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: peftsave MODEL_DIR OUT_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "peftsave:", err)
		os.Exit(1)
	}
}

func run(modelDir, out string) error {
	m, err := nn.Load(modelDir, cpu.Backend{})
	if err != nil {
		return err
	}
	spec := lora.Spec{Rank: 4, Alpha: 8, Targets: lora.AllLinear, Layers: 1}
	rng := rand.New(rand.NewPCG(42, 43))
	ad, err := lora.New(m, spec, rng)
	if err != nil {
		return err
	}
	// B starts at zero in a fresh adapter; give it values so the adapter
	// changes the logits and the round trip tests something.
	params := make([]float32, ad.Params.Len())
	if err := m.B.Download(params, ad.Params); err != nil {
		return err
	}
	for _, blk := range ad.Blocks {
		for _, lo := range blk {
			if lo != nil {
				b := params[ad.Offset(lo.B):][:lo.B.Len()]
				for i := range b {
					b[i] = float32(0.2 * rng.NormFloat64())
				}
			}
		}
	}
	m.B.Upload(ad.Params, params)
	return lora.Save(out, m, ad, spec, modelDir)
}
