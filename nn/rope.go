package nn

import "math"

// RopeTable returns a positions×headDim table whose row p holds cos(p·f) for
// each inverse frequency f, then sin(p·f); the angle p·f is a float32 product,
// as transformers computes it.
func RopeTable(invFreq []float32, positions int) []float32 {
	half := len(invFreq)
	t := make([]float32, positions*2*half)
	for p := 0; p < positions; p++ {
		row := t[p*2*half : (p+1)*2*half]
		for i, f := range invFreq {
			a := float64(float32(p) * f)
			row[i] = float32(math.Cos(a))
			row[half+i] = float32(math.Sin(a))
		}
	}
	return t
}
