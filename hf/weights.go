package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/nlpodyssey/safetensors"
	"golang.org/x/sys/unix"
)

// StoredTensor is one tensor of a safetensors file: its raw little-endian
// bytes point into the file's memory map, never into a Go heap copy.
type StoredTensor struct {
	Name  string
	File  string
	DType DType
	Shape []int
	Data  []byte
	// Mapping is the whole memory map that Data lies in: page-aligned and a
	// whole number of pages long, so a GPU backend can wrap it once without
	// copying and bind each tensor at its offset. Nil for tensors that are
	// not mapped from a file.
	Mapping []byte
}

// Floats widens the tensor to float32 into dst (len = element count).
func (t *StoredTensor) Floats(dst []float32) {
	switch t.DType {
	case F32:
		for i := range dst {
			dst[i] = f32le(t.Data[4*i:])
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(uint16(t.Data[2*i]) | uint16(t.Data[2*i+1])<<8)
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(uint16(t.Data[2*i]) | uint16(t.Data[2*i+1])<<8)
		}
	}
}

// Weights is an opened set of safetensors files (one, or the shards of an
// index), memory-mapped read-only. Close unmaps them.
type Weights struct {
	tensors map[string]*StoredTensor
	maps    [][]byte
}

// OpenWeights maps dir/model.safetensors, or every shard named by
// dir/model.safetensors.index.json.
func OpenWeights(dir string) (*Weights, error) {
	w := &Weights{tensors: map[string]*StoredTensor{}}
	index := filepath.Join(dir, "model.safetensors.index.json")
	single := filepath.Join(dir, "model.safetensors")
	var files []string
	if data, err := os.ReadFile(index); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			return nil, fmt.Errorf("%s: not a valid index: %w", index, err)
		}
		if len(idx.WeightMap) == 0 {
			return nil, fmt.Errorf("%s: weight_map is empty", index)
		}
		seen := map[string]bool{}
		for _, f := range idx.WeightMap {
			if f != filepath.Base(f) {
				return nil, fmt.Errorf("%s: shard name %q must be a plain file name", index, f)
			}
			if !seen[f] {
				seen[f] = true
				files = append(files, filepath.Join(dir, f))
			}
		}
		sort.Strings(files)
	} else if errors.Is(err, fs.ErrNotExist) {
		files = []string{single}
	} else {
		return nil, fmt.Errorf("model weights: %w", err)
	}
	for _, f := range files {
		if err := w.mapFile(f); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// OpenWeightsFile maps one safetensors file.
func OpenWeightsFile(path string) (*Weights, error) {
	w := &Weights{tensors: map[string]*StoredTensor{}}
	if err := w.mapFile(path); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Names returns the names of all tensors, sorted.
func (w *Weights) Names() []string {
	names := make([]string, 0, len(w.tensors))
	for n := range w.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (w *Weights) mapFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("model weights: %s is missing (need model.safetensors or model.safetensors.index.json)", path)
		}
		return fmt.Errorf("model weights: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("model weights: %w", err)
	}
	if st.Size() < 8 {
		return fmt.Errorf("%s: truncated safetensors file (%d bytes)", path, st.Size())
	}
	// Whole pages: the tail of the last page reads as zeros.
	page := os.Getpagesize()
	mapping, err := unix.Mmap(int(f.Fd()), 0, (int(st.Size())+page-1)/page*page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("%s: mmap: %w", path, err)
	}
	w.maps = append(w.maps, mapping)
	return w.index(path, mapping[:st.Size()], mapping)
}

// index records every tensor of one mapped file (data, within mapping).
func (w *Weights) index(path string, data, mapping []byte) error {
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return fmt.Errorf("%s: invalid safetensors: %w", path, err)
	}
	for _, nt := range st.Tensors() {
		v := nt.TensorView
		var dt DType
		switch v.DType() {
		case safetensors.F32:
			dt = F32
		case safetensors.F16:
			dt = F16
		case safetensors.BF16:
			dt = BF16
		default:
			return fmt.Errorf("%s: tensor %q has unsupported dtype %s (need F32, F16 or BF16)", path, nt.Name, v.DType())
		}
		shape := make([]int, len(v.Shape()))
		for i, s := range v.Shape() {
			shape[i] = int(s)
		}
		if _, dup := w.tensors[nt.Name]; dup {
			return fmt.Errorf("%s: tensor %q appears in more than one file", path, nt.Name)
		}
		w.tensors[nt.Name] = &StoredTensor{Name: nt.Name, File: path, DType: dt, Shape: shape, Data: v.Data(), Mapping: mapping}
	}
	return nil
}

// Tensor returns the named tensor after checking its shape.
func (w *Weights) Tensor(name string, shape ...int) (*StoredTensor, error) {
	t, ok := w.tensors[name]
	if !ok {
		return nil, fmt.Errorf("model weights: tensor %q is missing", name)
	}
	if !sameShape(t.Shape, shape) {
		return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v", t.File, name, t.Shape, shape)
	}
	return t, nil
}

// Has reports whether the named tensor exists.
func (w *Weights) Has(name string) bool { _, ok := w.tensors[name]; return ok }

// Lookup returns the named tensor whatever its shape, and whether it exists.
func (w *Weights) Lookup(name string) (*StoredTensor, bool) {
	t, ok := w.tensors[name]
	return t, ok
}

// Mappings returns the memory map of every file, whole pages each.
func (w *Weights) Mappings() [][]byte { return w.maps }

// Close unmaps the files; tensors obtained from w must not be used after.
func (w *Weights) Close() {
	for _, m := range w.maps {
		unix.Munmap(m)
	}
	w.maps, w.tensors = nil, nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
