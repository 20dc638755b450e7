package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/goseal/ttt/tokenizer"
)

func init() {
	commands["tokenize"] = command{summary: "encode JSON strings to token ids, or decode ids to strings, one per line", run: runTokenize,
		help: "Reads one JSON string per line on stdin and writes one JSON array of token\nids per line; with --decode, reads arrays of ids and writes strings. Nothing\nis written unless every line is good."}
}

func runTokenize(args []string) error {
	fs := flagSet("tokenize", "(--model M [--offline] | --tokenizer FILE) [--no_special] [--decode]")
	model := fs.String("model", "", "model folder or Hugging Face id (ORG/NAME[@REVISION]), downloaded on first use")
	addOfflineFlag(fs)
	file := fs.String("tokenizer", "", "a tokenizer.json file")
	noSpecial := fs.Bool("no_special", false, "encode without the post-processor's special tokens; decode without special tokens")
	decode := fs.Bool("decode", false, "decode arrays of ids instead of encoding strings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var tok *tokenizer.Tokenizer
	var err error
	switch {
	case (*model == "") == (*file == ""):
		return errors.New("give exactly one of --model and --tokenizer")
	case *model != "":
		dir, rerr := resolveModel(*model)
		if rerr != nil {
			return rerr
		}
		tok, err = tokenizer.Load(dir)
	default:
		tok, err = tokenizer.LoadFile(*file)
	}
	if err != nil {
		return err
	}
	return tokenize(tok, os.Stdin, os.Stdout, *decode, *noSpecial)
}

// tokenize reads every line of in, then writes one result per line to out.
// The first bad line stops it before anything is written.
func tokenize(tok *tokenizer.Tokenizer, in io.Reader, out io.Writer, decode, noSpecial bool) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	var results [][]byte
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		var res []byte
		var err error
		if decode {
			res, err = decodeLine(tok, line, noSpecial)
		} else {
			res, err = encodeLine(tok, line, noSpecial)
		}
		if err != nil {
			return fmt.Errorf("stdin line %d: %w", n, err)
		}
		results = append(results, res)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	w := bufio.NewWriter(out)
	for _, r := range results {
		w.Write(r)
		w.WriteByte('\n')
	}
	return w.Flush()
}

func encodeLine(tok *tokenizer.Tokenizer, line []byte, noSpecial bool) ([]byte, error) {
	var s string
	if err := json.Unmarshal(line, &s); err != nil {
		return nil, fmt.Errorf("want a JSON string: %v", err)
	}
	return json.Marshal(tok.Encode(s, !noSpecial))
}

func decodeLine(tok *tokenizer.Tokenizer, line []byte, noSpecial bool) ([]byte, error) {
	var ids []int
	if err := json.Unmarshal(line, &ids); err != nil || ids == nil {
		return nil, fmt.Errorf("want a JSON array of token ids: %s", line)
	}
	for _, id := range ids {
		if id < 0 || id >= tok.VocabSize() {
			return nil, fmt.Errorf("token id %d out of range [0, %d)", id, tok.VocabSize())
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tok.Decode(ids, noSpecial)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
