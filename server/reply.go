package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// Reply is the success reply of one request, with exactly the keys of SEAL's
// server in its order. Every list has one entry per question.
type Reply struct {
	BaselineAccuracy Accuracy `json:"baseline_accuracy"`
	AdapterAccuracy  Accuracy `json:"adapter_accuracy"`
	AdapterGain      Accuracy `json:"adapter_gain"`
	BaselineTexts    []string `json:"baseline_texts"`
	AdapterTexts     []string `json:"adapter_texts"`
	BaselineCorrect  []bool   `json:"baseline_correct"`
	AdapterCorrect   []bool   `json:"adapter_correct"`
	Gains            []int    `json:"gains"`
}

// newReply builds the reply from the per-question results of both phases.
func newReply(baseTexts, adaptTexts []string, baseOK, adaptOK []bool) *Reply {
	base, adapt := accuracy(baseOK), accuracy(adaptOK)
	gains := make([]int, len(baseOK))
	for i := range gains {
		switch {
		case adaptOK[i] && !baseOK[i]:
			gains[i] = 1
		case baseOK[i] && !adaptOK[i]:
			gains[i] = -1
		}
	}
	return &Reply{
		BaselineAccuracy: round4(base),
		AdapterAccuracy:  round4(adapt),
		AdapterGain:      round4(adapt - base),
		BaselineTexts:    baseTexts,
		AdapterTexts:     adaptTexts,
		BaselineCorrect:  baseOK,
		AdapterCorrect:   adaptOK,
		Gains:            gains,
	}
}

// accuracy is the fraction of true verdicts, 0 for none.
func accuracy(ok []bool) float64 {
	if len(ok) == 0 {
		return 0
	}
	n := 0
	for _, v := range ok {
		if v {
			n++
		}
	}
	return float64(n) / float64(len(ok))
}

// Accuracy is a float that encodes as Python's json does: always with a
// fractional part or exponent (0.0, 1.0, 0.3333), so clients see a float.
type Accuracy float64

// MarshalJSON implements json.Marshaler.
func (a Accuracy) MarshalJSON() ([]byte, error) {
	f := float64(a)
	if f == 0 {
		f = 0 // no "-0.0"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") { // "n" covers NaN and Inf, which never occur
		s += ".0"
	}
	return []byte(s), nil
}

// round4 rounds to 4 decimal places as Python's round(x, 4) does: to the
// nearest representable result of the exact binary value, ties to even.
func round4(x float64) Accuracy {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return Accuracy(x)
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 4, 64), 64)
	return Accuracy(r)
}

// encode marshals v as one JSON message, without HTML escaping and without
// a trailing newline.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values built by this package are encoded; they always marshal.
		panic("server: encoding a reply: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// errorReply is the reply for a failed request.
func errorReply(err error) []byte {
	return encode(map[string]string{"error": errorText(err)})
}

// errorText formats err as "Type: message" with a Python exception name.
func errorText(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return "RuntimeError: " + err.Error()
}
