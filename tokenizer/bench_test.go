package tokenizer

import (
	"os"
	"strings"
	"testing"
)

// benchText is the text BenchmarkEncode encodes: the file named by
// SEAL_TTT_BENCH_TEXT, or else the corpus's prose joined by blank lines and
// repeated to 4 MiB (the text tools/golden/tokenizer_golden.py bench times
// Hugging Face tokenizers on).
func benchText(b *testing.B) string {
	if path := os.Getenv("SEAL_TTT_BENCH_TEXT"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		return string(data)
	}
	var prose []string
	for _, c := range loadCorpus(b) {
		if c.Kind == "prose" {
			prose = append(prose, c.Text)
		}
	}
	unit := strings.Join(prose, "\n\n")
	reps := (4<<20 + len(unit) - 1) / len(unit)
	return strings.Repeat(unit+"\n\n", reps-1) + unit
}

// BenchmarkEncode encodes the benchmark text in one call, single-threaded,
// after one warm-up call (which fills the merge cache, as Hugging Face's
// own cache is filled in the comparison).
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	for _, name := range realNames {
		b.Run(name, func(b *testing.B) {
			tok := realTokenizer(b, name)
			n := len(tok.Encode(text, false))
			for b.Loop() {
				tok.Encode(text, false)
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(len(text))*float64(b.N)/sec/1e6, "MB/s")
			b.ReportMetric(float64(n)*float64(b.N)/sec, "tokens/s")
		})
	}
}
