package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/goseal/ttt/hf"
)

func init() {
	commands["download"] = command{summary: "fetch models from the Hugging Face hub into the local cache", run: runDownload,
		help: `Fetches the config, generation config, tokenizer files and safetensors
weights of each model (nothing else) into the Hugging Face cache that
transformers and huggingface_hub share, resuming partial files and checking
every file's hash; a file already there is not fetched again. Prints each
model's snapshot folder. Every command that takes --model does the same on
first use.

Environment: HF_TOKEN (else the token file of huggingface-cli login) for
gated models such as Llama 3; HF_ENDPOINT for a mirror; HF_HUB_CACHE or
HF_HOME for the cache; HF_HUB_OFFLINE=1 as --offline.`}
}

func runDownload(args []string) error {
	return download(context.Background(), args, os.Stdout, os.Stderr)
}

// download runs the download command: it prints each model's snapshot folder
// on stdout and shows progress on stderr.
func download(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("download", "[--offline] ORG/NAME[@REVISION]...")
	fs.SetOutput(stderr)
	addOfflineFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("name at least one model")
	}
	h := newHub(stderr)
	for _, arg := range fs.Args() {
		id, err := hf.ParseModelID(arg)
		if err != nil {
			return err
		}
		snap, err := h.Download(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, snap)
	}
	return nil
}

// offline is the --offline flag of the command being run.
var offline bool

// addOfflineFlag defines --offline, for every command that takes --model.
func addOfflineFlag(fs *flag.FlagSet) {
	fs.BoolVar(&offline, "offline", false, "never download: use only the local Hugging Face cache (as HF_HUB_OFFLINE=1)")
}

// newHub is the hub as the environment and --offline set it, showing
// progress on w.
func newHub(w io.Writer) *hf.Hub {
	h := hf.NewHub()
	h.Offline = h.Offline || offline
	h.Progress = w
	return h
}

// resolveModel turns a --model value other than "" into a model folder,
// downloading a hub model on first use.
func resolveModel(arg string) (string, error) {
	return newHub(os.Stderr).Resolve(context.Background(), arg)
}
