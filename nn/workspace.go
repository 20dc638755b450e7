package nn

import "github.com/goseal/ttt/hf"

// workspace hands out named scratch tensors and keeps them between calls, so
// a steady stream of same-shaped steps (decoding, training) allocates
// nothing on the device.
type workspace struct {
	b       Backend
	tensors map[string]*Tensor // the view last handed out under each name
	store   map[string]*Tensor // the allocation behind each name
}

func newWorkspace(b Backend) *workspace {
	return &workspace{b: b, tensors: map[string]*Tensor{}, store: map[string]*Tensor{}}
}

// get returns the F32 scratch tensor called name with the given shape. Its
// contents are whatever the last user left there.
func (w *workspace) get(name string, rows, cols int) *Tensor {
	return w.typed(name, hf.F32, rows, cols)
}

// upload returns the I32 scratch tensor called name holding vals (one
// column), uploaded.
func (w *workspace) upload(name string, vals []int32) *Tensor {
	t := w.typed(name, hf.I32, len(vals), 1)
	if len(vals) > 0 {
		w.b.UploadInts(t, vals)
	}
	return t
}

func (w *workspace) typed(name string, dt hf.DType, rows, cols int) *Tensor {
	if t := w.tensors[name]; t != nil && t.Rows == rows && t.Cols == cols && t.DType == dt {
		return t
	}
	s := w.store[name]
	if s == nil || s.Len() < rows*cols || s.DType != dt {
		if s != nil {
			w.b.Free(s) // outgrown: back to the backend once queued work is done
		}
		s = w.b.NewTensor(dt, max(rows*cols, 1), 1)
		w.store[name] = s
	}
	t := s.View(0, rows, cols)
	w.tensors[name] = t
	return t
}

// free gives every scratch tensor back to the backend; the workspace is
// empty after.
func (w *workspace) free() {
	for _, t := range w.store {
		w.b.Free(t)
	}
	clear(w.store)
	clear(w.tensors)
}
