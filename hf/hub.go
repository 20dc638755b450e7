package hf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ResolveModel turns a --model argument into a model folder: an existing
// folder is used as is; otherwise "ORG/NAME" is looked up in the local Hugging
// Face hub cache (see NewHub for where it is) at the snapshot refs/main
// names. Nothing is ever downloaded: Hub.Resolve does that.
func ResolveModel(arg string) (string, error) {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return arg, nil
	}
	parts := strings.Split(arg, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" || strings.HasPrefix(arg, ".") {
		return "", fmt.Errorf("model %q: no such folder, and not a Hugging Face id of the form ORG/NAME", arg)
	}
	cache := hubCache()
	repo := filepath.Join(cache, "models--"+parts[0]+"--"+parts[1])
	ref, err := os.ReadFile(filepath.Join(repo, "refs", "main"))
	if err != nil {
		return "", fmt.Errorf("model %q: not in the local Hugging Face cache %s (no refs/main; download it first: `seal-ttt download %s`)", arg, cache, arg)
	}
	snap := filepath.Join(repo, "snapshots", strings.TrimSpace(string(ref)))
	if st, err := os.Stat(snap); err != nil || !st.IsDir() {
		return "", fmt.Errorf("model %q: snapshot %s named by refs/main is missing", arg, snap)
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
