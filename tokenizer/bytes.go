package tokenizer

// Special tokens of the Bytes tokenizer.
const (
	BytesEndOfText = 256 // <|endoftext|>, the EOS token
	BytesIMStart   = 257 // <|im_start|>
	BytesIMEnd     = 258 // <|im_end|>
)

// Bytes returns the byte-level tokenizer of the built-in demo model: id b
// (0 to 255) is byte b, written in the vocabulary as its GPT-2 byte-level
// symbol; there are no merges, so every byte of the text is one token;
// <|endoftext|>, <|im_start|> and <|im_end|> are the special tokens 256, 257
// and 258, recognised in text like any tokenizer's special tokens.
// EOS is <|endoftext|>; there is no BOS or padding token.
func Bytes() *Tokenizer {
	t := &Tokenizer{bos: -1, eos: BytesEndOfText, pad: -1, vocab: make(map[string]int, 256)}
	t.grow(256)
	for b := range 256 {
		t.vocab[string(byteLevel[b])] = b
		t.model.byteID[b] = int32(b)
		t.known[b] = true
		t.pieces[b] = string([]byte{byte(b)})
	}
	err := t.setAdded([]addedToken{
		{Content: "<|endoftext|>", Special: true},
		{Content: "<|im_start|>", Special: true},
		{Content: "<|im_end|>", Special: true},
	})
	if err != nil {
		panic("tokenizer: building the byte tokenizer: " + err.Error()) // cannot happen: fixed input
	}
	return t
}
