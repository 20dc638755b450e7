package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/goseal/ttt/tokenizer"
)

func TestTokenize(t *testing.T) {
	tok := tokenizer.Bytes()
	tests := []struct {
		name              string
		in                string
		decode, noSpecial bool
		want              string
		wantErr           string
	}{
		{name: "encode", in: "\"hi\"\n\"<|im_end|>\\n\"\n", want: "[104,105]\n[258,10]\n"},
		{name: "encode empty string", in: "\"\"\n", want: "[]\n"},
		{name: "decode", in: "[104,105]\n[258, 10]\n", decode: true, want: "\"hi\"\n\"<|im_end|>\\n\"\n"},
		{name: "decode without specials", in: "[258,104]\n", decode: true, noSpecial: true, want: "\"h\"\n"},
		{name: "decode cut character", in: "[195]\n", decode: true, want: "\"\uFFFD\"\n"},
		{name: "bad string line", in: "\"ok\"\nnot json\n", wantErr: "stdin line 2: want a JSON string"},
		{name: "blank line", in: "\"ok\"\n\n", wantErr: "stdin line 2"},
		{name: "bad ids line", in: "[1,2]\n\"x\"\n", decode: true, wantErr: "stdin line 2: want a JSON array"},
		{name: "id out of range", in: "[259]\n", decode: true, wantErr: "token id 259 out of range"},
		{name: "negative id", in: "[-1]\n", decode: true, wantErr: "token id -1 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := tokenize(tok, strings.NewReader(tt.in), &out, tt.decode, tt.noSpecial)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if out.Len() != 0 {
					t.Errorf("wrote %q before failing; want nothing", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}
