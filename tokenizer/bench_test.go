package tokenizer

import (
	"os"
	"strconv"
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

// BenchmarkEncode encodes the benchmark text single-threaded, after one
// warm-up pass (which fills the merge cache, as Hugging Face's own cache is
// filled in the comparison): "text" encodes it in one call, "passages" one
// call per blank-line-separated passage.
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	passages := strings.Split(text, "\n\n")
	for _, name := range realNames {
		b.Run(name+"/text", func(b *testing.B) {
			tok := realTokenizer(b, name)
			n := len(tok.Encode(text, false))
			for b.Loop() {
				tok.Encode(text, false)
			}
			reportRate(b, len(text), n)
		})
		b.Run(name+"/passages", func(b *testing.B) {
			tok := realTokenizer(b, name)
			n := 0
			for _, p := range passages {
				n += len(tok.Encode(p, false))
			}
			for b.Loop() {
				for _, p := range passages {
					tok.Encode(p, false)
				}
			}
			reportRate(b, len(text), n)
		})
	}
}

// reportRate reports the rate of encoding size bytes into n tokens per op.
func reportRate(b *testing.B, size, n int) {
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(size)*float64(b.N)/sec/1e6, "MB/s")
	b.ReportMetric(float64(n)*float64(b.N)/sec, "tokens/s")
}

// BenchmarkEncodeLongWord encodes one word of n bytes that the merges cut
// into many tokens: the time per byte stays flat as n grows.
func BenchmarkEncodeLongWord(b *testing.B) {
	tok := realTokenizer(b, "qwen2.5")
	for _, n := range []int{1 << 10, 1 << 14, 1 << 18} {
		word := strings.Repeat("qzx", n/3+1)[:n]
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				tok.Encode(word, false)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/byte")
		})
	}
}
