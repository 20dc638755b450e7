package nn

// workspace hands out named scratch tensors and keeps them between calls, so
// a steady stream of same-shaped steps (decoding) allocates nothing.
type workspace struct {
	b       Backend
	tensors map[string]*Tensor
	store   map[string]*Tensor
}

func newWorkspace(b Backend) *workspace {
	return &workspace{b: b, tensors: map[string]*Tensor{}, store: map[string]*Tensor{}}
}

// get returns the scratch tensor called name with the given shape. Its
// contents are whatever the last user left there.
func (w *workspace) get(name string, rows, cols int) *Tensor {
	if t := w.tensors[name]; t != nil && t.Rows == rows && t.Cols == cols {
		return t
	}
	s := w.store[name]
	if s == nil || len(s.Data) < rows*cols {
		s = w.b.NewTensor(rows*cols, 1)
		w.store[name] = s
	}
	t := &Tensor{Rows: rows, Cols: cols, Data: s.Data[:rows*cols], dev: s.dev, devOff: s.devOff}
	w.tensors[name] = t
	return t
}
