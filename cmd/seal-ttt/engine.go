package main

import (
	"errors"

	"github.com/goseal/ttt/server"
)

// loadModel loads the model named by modelFlag (a local directory or a
// Hugging Face id; "" means the built-in demo model) on backend ("" means the
// best available) and returns it as the TTT cycle sees it, with a one-line
// description for the startup log.
func loadModel(modelFlag, backend string) (server.Model, string, error) {
	return nil, "", errors.New("model loading is not available yet")
}
