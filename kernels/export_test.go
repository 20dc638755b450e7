package kernels

import "github.com/goseal/ttt/metal"

// LoadWith compiles the library with some files' text replaced, for tests
// of deliberately broken kernels.
func LoadWith(dev *metal.Device, replace map[string]string) (*Library, error) {
	return load(dev, source(replace), metal.CompileOptions{})
}
