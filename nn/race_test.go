//go:build race

package nn

// raceEnabled reports a -race build, whose instrumentation allocates on its own.
const raceEnabled = true
