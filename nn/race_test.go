//go:build race

package nn_test

// raceEnabled reports a -race build, whose instrumentation allocates on its own.
const raceEnabled = true
