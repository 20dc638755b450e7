package hf

import (
	"fmt"
	"os"
	"path/filepath"
)

// ResolveModel turns a --model argument into a model folder: an existing
// folder is used as is; otherwise ORG/NAME[@REVISION] is looked up in the
// local Hugging Face hub cache (see NewHub for where it is). Nothing is
// ever downloaded, and only the snapshot folder need exist (for reading a
// config): Hub.Resolve downloads, and checks the weights are there.
func ResolveModel(arg string) (string, error) {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return arg, nil
	}
	id, err := ParseModelID(arg)
	if err != nil {
		return "", fmt.Errorf("%w (and no such folder)", err)
	}
	h := &Hub{Cache: hubCache()}
	_, snap, err := h.snapshot(id)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(snap); err != nil || !st.IsDir() {
		return "", fmt.Errorf("model %s: snapshot %s is missing from the local Hugging Face cache", id, snap)
	}
	return snap, nil
}

// hubCache is the hub cache folder: HF_HUB_CACHE, else HF_HOME/hub.
func hubCache() string {
	if c := os.Getenv("HF_HUB_CACHE"); c != "" {
		return c
	}
	return filepath.Join(hfHome(), "hub")
}

// hfHome is HF_HOME, else XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface, as huggingface_hub chooses it.
func hfHome() string {
	if h := os.Getenv("HF_HOME"); h != "" {
		return h
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "huggingface")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "huggingface")
}
