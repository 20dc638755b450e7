#!/usr/bin/env python3
"""Golden fixtures for the tokenizer package.

Three steps, each a subcommand:

  corpus  OUT.json
      Writes the test corpus (no third-party imports): hand-written seeds plus
      strings derived from them with a fixed random seed. The result is
      committed as tokenizer/testdata/tokenizer_corpus.json.

  synthetic
      Writes tokenizer/testdata/synthetic/tokenizer.json, a small byte-level
      tokenizer that uses every option the Go package supports (added-token
      flags, ignore_merges, pair merges, a template with a suffix).

  golden  --corpus C --tokenizers DIR --out OUTDIR [--dry-run]
      Runs Hugging Face `tokenizers` 0.23 on every corpus string for each of
      DIR/{qwen2.5,llama3,gpt2}/tokenizer.json and the synthetic one, and writes
      OUTDIR/tokenizer_golden_<name>.json.gz: the ids with and without special
      tokens, the decoded text with and without skipping special tokens, and
      decodings of id sequences that cut characters apart. --dry-run replaces
      `tokenizers` with a stand-in so the rest of the script can be checked
      without it.

  bench   --corpus C --tokenizers DIR [--text FILE]
      Times single-threaded `Tokenizer.encode` on the corpus's prose repeated
      to 4 MiB (or on FILE), the same text the Go benchmark encodes: in one
      call, and in one call per blank-line-separated passage.

All settings that could change the output are set explicitly: no truncation,
no padding, special tokens matched (encode_special_tokens=False).
"""

import argparse
import gzip
import json
import os
import random
import sys
import time
import traceback

NAMES = ["qwen2.5", "llama3", "gpt2"]
SYNTHETIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tokenizer",
                              "testdata", "synthetic", "tokenizer.json")
BENCH_BYTES = 4 << 20

# ---------------------------------------------------------------- corpus seeds

PASSAGES = [
    "The river delta formed over roughly six thousand years, as silt carried from the "
    "highlands settled where the current slowed. By the 14th century, farmers had drained "
    "about 40% of the marshes; the remaining wetlands were protected in 1962.",
    "In 1887 the observatory's first director, Helena Marsh, catalogued 2,315 variable stars. "
    "Her notebooks (now held in the university archive) record each measurement to 0.01 "
    "magnitude, an accuracy few of her contemporaries matched.",
    "Photosynthesis converts light energy into chemical energy. Chlorophyll absorbs mostly "
    "blue and red light, which is why leaves look green. The overall reaction can be written "
    "as 6CO2 + 6H2O -> C6H12O6 + 6O2.",
    "The treaty was signed on 4 March 1793 in the town hall, but it didn't take effect until "
    "the assembly ratified it. Critics argued that the border it drew ignored the valley's "
    "older parish lines; supporters said it'd end a decade of raids.",
    "A suspension bridge carries its deck on vertical hangers attached to main cables. The "
    "cables pass over two towers and are anchored at each end. The longest main span in the "
    "world exceeded 2,000 metres for the first time in 2022.",
    "What did the committee decide? After three days of debate, it voted 11-4 to fund the "
    "library's extension, provided that the city matched the grant dollar-for-dollar.",
    "Glaciers move because ice deforms under its own weight. Near the bed, meltwater can "
    "lubricate the ice and let it slide, sometimes at speeds of several metres per day.",
    "The orchestra's 1924 tour covered 37 cities in 11 weeks. Ticket prices ranged from $0.50 "
    "to $3.00, and the programme always ended with the same overture.",
    "Early computers stored programs on punched cards. A single card held 80 columns, and a "
    "large program could need thousands of them, carried in long trays to the machine room.",
    "They're not sure whether the manuscript is the author's own copy. The handwriting "
    "matches her letters, but the ink we'll need to test was only introduced after 1850.",
    "Honey bees communicate the direction of food with a waggle dance: the angle of the run "
    "relative to vertical matches the angle between the food and the sun.",
    "The harbour's lighthouse, rebuilt in 1901 after a storm, stands 47 m tall. Its lens "
    "rotates once every 20 seconds, giving two white flashes that ships can see 25 nautical "
    "miles away.",
    "Q: Who founded the city?\nA: According to the chronicle, a group of fishing families "
    "settled the island around 1150.\n\nQ: When did it receive a charter?\nA: In 1298.",
    "  Indented text keeps its leading spaces, and trailing spaces too.   ",
    "Title: Coral reefs\r\nContext: Reefs cover less than 1% of the ocean floor\r\nbut "
    "support about a quarter of all marine species.\r\n",
]

WORDS = (
    "the of and to in a is that for it as was with be by on not he I this are or his from "
    "at which but have an they you were her she there one all we their can has been if more "
    "when will would who so no out up into do its about time than only other new some could "
    "these two may first then most over also after did many before must through years where "
    "much your way well down should because each just those people how too little state good "
    "very make world still own see men work long get here between both life being under never "
    "day same another know while last might us great old year off come since against go came "
    "right used take three river museum theorem photosynthesis committee electricity "
    "archipelago reconnaissance Mississippi Constantinople Tchaikovsky naïve café résumé "
    "coöperate façade Zürich São Paulo Kraków Dvořák Ångström"
).split()

NUMBERS = [
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "3.14159", "2.718281828",
    "1,000", "1,000,000", "10,000.50", "-42", "+7", "1e-9", "6.022e23", "0x1F", "0b1010",
    "007", "2024-06-01", "12:45:30", "1/2", "3/4", "99%", "$5.99", "€12,50", "£3", "¥1000",
    "1st", "2nd", "3rd", "4th", "21st", "100th", "v1.2.3", "192.168.0.1", "+1 (555) 010-9999",
    "ISBN 978-3-16-148410-0", "A4", "B12", "MP3", "x86_64", "abc123def456", "12abc", "1.", ".5",
    "١٢٣٤", "۱۲۳", "१२३", "১২৩", "๑๒๓", "一二三", "Ⅻ", "ⅷ", "½", "¾", "²³", "₁₂", "①②③",
    "１２３", "٣٫١٤",
]

CONTRACTIONS = [
    "it's", "It's", "IT'S", "we'll", "We'LL", "they're", "THEY'RE", "you've", "YOU'VE",
    "I'm", "I'M", "she'd", "SHE'D", "don't", "DON'T", "can't", "won't", "isn't", "o'clock",
    "O'Neil", "rock 'n' roll", "'s", "'S", "'t", "'re", "'Re", "'rE", "'ve", "'m", "'ll",
    "'LL", "'d", "'D", "''s", "'''", "'ſ", "'ſtar", "I'ſ", "'x", "'", "' s", "'sup", "'stop",
    "'llama", "'dog", "the dogs' bones", "James's", "’s", "it’s", "he said 'hello'",
    "'tis", "y'all'd've", "I'd've", "'1", "'é", "'ß", "x's", "'K", "'k",
]

PUNCT = [
    "!", "!!!", "?!?!", "...", "…", "---", "—", "–", "***", "(a)", "[x]", "{}", "<<>>", "<>",
    "a.b.c", "e.g.", "i.e.,", "¿Qué?", "¡Hola!", "«guillemets»", "“quotes”", "‘single’",
    "„low“", "Hello, world!", "wait... what?!", "(see: [1], [2])", "a+b=c", "x^2", "~/.bashrc",
    "#hashtag", "@user", "foo@example.com", "https://example.com/path?q=1&r=2#frag",
    "C:\\Users\\me", "/usr/local/bin", "::", ";;", "%%", "&&", "||", "=>", "->", "<=", "!=",
    "§ 3", "© 2024", "™", "°C", "±", "×", "÷", "µ", "•", "·", "¶", "†", "‡", "※", " !", " !!",
    "\"quoted\"", "'single'", "`backtick`", "____", "====", "~~~~", "^^", "\\n", "\\\\",
]

WHITESPACE = [
    "", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", " \n",
    "\n ", " \n ", "\t\n", "\n\t", " \t ", "a\tb", "a\t\tb", "a \tb", "a\t b", "a\nb", "a\n\nb",
    "a\r\nb", "a \r\n b", "a\rb", "line1\nline2\n", "a  b", "a   b", "a    b", "a \n\n b",
    " a", "  a", "a ", "a  ", " a ", "  hello  ", "\thello", "hello\t", "\nhello", "hello\n",
    "a\u00a0b", "a\u00a0\u00a0b", "\u00a0a", "a\u3000b", "\u3000", "a\u2028b", "a\u2029b",
    "a\u0085b", "a\u200bb", "a\ufeffb", "a\u180eb", "a\u2009b", "a\u202fb", "a\u205fb",
    "a\u1680b", "a\x0bb", "a\x0cb", "a\x1cb", "a\x00b", "\x00", "\x7f", "a\x1bb",
    " ,", " .", " 1", " 12", "1 2", "  1", "  .", " \n.", "\n1", "\n.", ".\n", ".\n\n",
    "!\r\n\r\n", " !\n", "a.\n b", "x  \n  y", " \n \n ", "\n \n", "\t\r\n", "\r\r\n",
    "\n\r", " \r", "\u00a0\n", "\u3000\n", "\u2028\n",
]

EMOJI = [
    "😀", "😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🇯🇵🇺🇸", "❤️", "✨", "🚀 launch", "hello 🌍 world",
    "I ❤ NY", "🙂.", "a😀b", " 😀", "😀 ", "🤖🧠", "☕️", "🏳️‍🌈", "🧑🏿‍💻", "1️⃣",
]

SCRIPTS = [
    "这是一个测试句子。", "我们今天去公园散步，天气很好！", "中文和English混合的句子",
    "日本語のテキストです。", "東京は日本の首都です。", "カタカナとひらがな",
    "한국어 문장입니다.", "안녕하세요, 세계!", "مرحبا بالعالم", "اللغة العربية جميلة.",
    "שלום עולם", "Привет, мир!", "Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới", "Tiếng Việt có dấu",
    "İstanbul'da ılık bir gün", "Zażółć gęślą jaźń", "Ærø og Øresund", "Straße", "ﬁnance",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝐁𝐨𝐥𝐝", "∑∫∂√∞", "ΑΒΓ αβγ", "ǅungla", "ǈǋ", "ᐊᓐᓇ",
]

COMBINING = [
    "e\u0301", "Cafe\u0301", "cafe\u0301 au lait", "a\u0308", "o\u0308\u0301", "A\u030a",
    "\u212b", "\u2126", "\u1100\u1161", "\u1100\u1161\u11a8", "n\u0303", "a\u0323\u0307",
    "a\u0307\u0323", "q\u0307\u0323", "e\u0301\u0301", "\u0301", " \u0301", "\u0301a",
    "x\u0301y", "\u00e9", "\u0065\u0301t\u0065\u0301", "\u0915\u093c", "\u0958",
    "\u05d0\u05b8", "\u0627\u0653", "\u30ab\u3099", "\u304b\u3099", "\ufb01", "\u1e9b\u0323",
    "\u0041\u0300\u0316", "i\u0307", "\u1fb3\u0301", "Ω", "K", "Å", "\u00c5", "ñ ñ",
]

CODE = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n\tprint(i)\n",
    "func main() {\n\tfmt.Println(\"hello\")\n}\n",
    "if (x != null && y >= 0) { return x->next; }",
    "{\"name\": \"seal\", \"version\": 2, \"ok\": true, \"list\": [1, 2, 3]}",
    "<div class=\"box\"><p>Hello &amp; welcome</p></div>",
    "SELECT id, name FROM users WHERE age > 21 ORDER BY name;",
    "x = [i**2 for i in range(100) if i % 3 == 0]",
    "    indented = True\n        more_indented = False\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); }",
    "const f = (a) => a?.b ?? 'c';",
    "git commit -m \"fix: handle CRLF\" && git push origin main",
    "$ ls -la | grep '.go$' | wc -l",
    "matrix[i][j] += a[i][k] * b[k][j];",
    "// TODO(someone): remove this hack\n/* block */",
    "\tif err != nil {\n\t\treturn fmt.Errorf(\"open %s: %w\", path, err)\n\t}\n",
    "y = lambda x: x if x else None  # comment",
    "---\ntitle: Doc\ntags: [a, b]\n---\n",
    "| col1 | col2 |\n|------|------|\n| 1    | 2    |",
    "\\begin{equation} E = mc^2 \\end{equation}",
]

SPECIAL = [
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "<|endoftext|>", "text<|endoftext|>more", "<|endoftext|><|endoftext|>", " <|endoftext|> ",
    "<|im_end|>", "<|im_start|>", "a<|im_end|>b", "<|im_start|><|im_end|>", "<|im_end|>\n\n",
    "<|begin_of_text|>", "<|begin_of_text|>Hello", "<|eot_id|>", "<|end_of_text|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>",
    "<|reserved_special_token_0|>", "<|reserved_special_token_250|>", "<|reserved_special_token_9",
    "<|im_start", "<|im_end|", "<||>", "<|<|im_end|>|>", "<<|endoftext|>>", "<|endoftext|",
    "|endoftext|>", "<|ENDOFTEXT|>", "< |endoftext| >", "<tool_call>{\"a\": 1}</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>", "<|file_sep|>", "<|repo_name|>x",
    "<|vision_start|><|image_pad|><|vision_end|>", "<|box_start|>(1,2)<|box_end|>",
    "end.<|endoftext|>", "<|endoftext|>\n", "\n<|im_start|>", "<|im_start|> user",
    "<|eot_id|><|eot_id|>", "<|begin_of_text|> <|begin_of_text|>", "<|python_tag|>",
    "<|finetune_right_pad_id|>", "<|eom_id|>", "<s>", "</s>", "<unk>", "[CLS]", "<pad>",
]

POOL = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "    \t\n\n\r.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`"
    "éüßñçøåæœÉÜ"
    "\u00a0\u3000\u2028\u0085\u200b\u0301\u0308\u0323"
    "ſ’“”…—–·"
    "中文字日本語한국어ابجדשЖжΩλअक"
    "١٢٣½²Ⅻ"
    "😀👍🏽🇫🇷"
)

SEPARATORS = ["", " ", "  ", "\n", "\n\n", "\r\n", "\t", " \n", "\n ", ". ", ", ", "'s ", "  \n\n  "]


def sentences(rng, n):
    """Random English-like sentences from WORDS."""
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 18))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(NUMBERS[:30]))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(CONTRACTIONS[:20]))
        s = " ".join(words)
        s = s[0].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!", ";", ":", "..."])
        out.append(s)
    return out


def build_corpus():
    rng = random.Random(20260601)
    seeds = {
        "passage": PASSAGES, "number": NUMBERS, "contraction": CONTRACTIONS, "punct": PUNCT,
        "space": WHITESPACE, "emoji": EMOJI, "script": SCRIPTS, "combining": COMBINING,
        "code": CODE, "special": SPECIAL,
    }
    corpus = []
    seen = set()

    def add(kind, text):
        if text not in seen:
            seen.add(text)
            corpus.append({"kind": kind, "text": text})

    # Prose first: the benchmark text is made of the "prose" entries.
    for p in PASSAGES:
        add("prose", p)
    for s in sentences(rng, 400):
        add("prose", s)
    for _ in range(60):
        add("prose", " ".join(sentences(rng, rng.randint(3, 8))))

    # Every seed as is, and in a few variants.
    for kind, items in seeds.items():
        for s in items:
            add(kind, s)
            add(kind, " " + s)
            add(kind, s + " ")
            add(kind, s + "\n")
            add(kind, "\t" + s)
            add(kind, s.upper())
            add(kind, "x" + s + "y")

    # Numbers and digit runs inside text.
    for n in range(1, 26):
        add("digits", "7" * n)
        add("digits", "".join(str(rng.randint(0, 9)) for _ in range(n)))
        add("digits", "abc" + "1234567890"[: n % 10 + 1] + " " + "9" * n)
    # Whitespace runs, long and mixed.
    for n in list(range(1, 41)) + [64, 100, 257, 1000]:
        add("space-run", " " * n)
        add("space-run", "a" + " " * n + "b")
        add("space-run", "a" + " " * n)
        add("space-run", " " * n + "!")
        add("space-run", "\n" * (n % 20 + 1) + " " * n + "x")
    for n in range(1, 13):
        add("space-run", "\t" * n + "x")
        add("space-run", "x" + "\r\n" * n)
        add("space-run", " \r\n" * n + "y")
        add("space-run", "a" + "\u00a0" * n + "b")
    # Long words: merge work must not be quadratic.
    for s in ["x" * 3000, "ab" * 1500, "1" * 600, "é" * 800, "中" * 500, "😀" * 200,
              "-" * 2000, "\n" * 500, " " * 4000, "a" + " " * 2000 + "b",
              "supercalifragilisticexpialidocious" * 40]:
        add("long", s)

    # Pairs of seeds joined by separators.
    flat = [(k, s) for k, items in seeds.items() for s in items]
    for _ in range(500):
        (k1, a), (k2, b) = rng.choice(flat), rng.choice(flat)
        add("mix", a + rng.choice(SEPARATORS) + b)
    # Random character soup from the pool of awkward characters.
    for _ in range(500):
        add("soup", "".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))))
    # Slices of passages, cutting words and whitespace at random places.
    joined = "\n\n".join(PASSAGES)
    for _ in range(200):
        i = rng.randrange(len(joined))
        add("slice", joined[i : i + rng.randint(1, 120)])
    # The synthetic tokenizer's added tokens, alone and among text.
    for s in SYNTHETIC_STRINGS:
        add("synthetic", s)
    parts = [a["content"] for a in SYNTHETIC_ADDED if a["content"]] + [
        "the", "th", "a", "xyz", "12345", "e\u0301", "é", "_", "!", "word"]
    seps = ["", " ", "  ", "\t", "\n", " \n ", "\u00a0", "x", "é"]
    for _ in range(300):
        add("synthetic", "".join(rng.choice(parts) + rng.choice(seps) for _ in range(rng.randint(1, 6))))
    # Characters of recent Unicode versions, where character tables can differ.
    for c in RECENT_UNICODE:
        for fmt in ["{}", "a{}b", " {}", "1{}2", "{}{}", "'{}"]:
            add("unicode", fmt.format(c, c))
    return corpus


# Letters, digits and marks of Unicode 13 to 16 (the Go package uses Go's
# Unicode 15.0 tables).
RECENT_UNICODE = [
    "\U0001DF00", "\U0001FAE0", "\U00011F04", "\U0001E4D0", "\U00031350", "\U0002EBF0",
    "\U0001E030", "\u0CF3", "\U00010EFD", "\U00011F50", "\U0001E4F0", "\U0001FBF0",
    "\U00016AC0", "\U000105C0", "\U0001E5D0", "\U00016D40", "\u1C89", "\U0001CCF0",
    "\u2FFC", "\u31E4", "\U00011B00", "\u08CA", "\u0897",
]


# ------------------------------------------------------ synthetic tokenizer

# Added tokens of the synthetic tokenizer: every option of an added token,
# ids that disagree with the ones Hugging Face assigns, a token that is also
# in the model vocabulary, an empty and a duplicated content.
SYNTHETIC_ADDED = [
    {"id": 0, "content": "<s>", "special": True, "normalized": False},
    {"id": 1, "content": "</s>", "special": True, "normalized": False},
    {"id": 500, "content": "<L>", "lstrip": True, "special": True, "normalized": False},
    {"id": 501, "content": "<R>", "rstrip": True, "special": True, "normalized": False},
    {"id": 502, "content": "<LR>", "lstrip": True, "rstrip": True, "special": False, "normalized": False},
    {"id": 503, "content": "sw", "single_word": True, "special": False, "normalized": False},
    {"id": 504, "content": "é!", "special": False, "normalized": True},
    {"id": 505, "content": "e\u0301?", "special": False, "normalized": True},
    {"id": 506, "content": "<n>", "special": True, "normalized": True},
    {"id": 507, "content": "th", "special": True, "normalized": False},
    {"id": 508, "content": "a b", "special": False, "normalized": False},
    {"id": 509, "content": "", "special": True, "normalized": False},
    {"id": 510, "content": "<L>", "lstrip": True, "special": True, "normalized": False},
    {"id": 511, "content": "<Lo", "special": False, "normalized": False},
    {"id": 512, "content": "<LRx>", "special": False, "normalized": False},
]

SYNTHETIC_STRINGS = [
    "a <L> b", "a  <L>b", "a\t\n <L>", "<L>", " <L> ", "x<R>  y", "<R>\n\n", "<R>", "<LR>",
    " \t<LR>\n z", "a <LR> <LR> b", "<L><R><LR>", "<LRx>", "<Lo<L>", "<Lo", "<L<L>",
    "sw", "a sw b", "asw", "swa", "sw_", "_sw", "sw!", "!sw", "swé", "ésw", "(sw)", "sw sw", "swsw",
    "1sw", "sw1", " sw\n", "é!", "e\u0301!", "e\u0301?", "é?", "xé!y", "<n>", "a<n>b", "th",
    "the", "th the", "three", "a b", "a  b", "xa by", "xyz", "xyzxyz", " xyz", "<s>text</s>", "</s>",
    "12345", "1234567", "the the the", "  the", "\u00a0the", "th\u0301e",
]


def synthetic_tokenizer():
    """A small byte-level tokenizer.json with every option the Go package supports."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    sym = {b: chr(c) for b, c in zip(bs, cs)}
    vocab = {sym[b]: b for b in range(256)}
    merges = []

    def merge(a, b):
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
        merges.append([a, b])

    # Competing merges: "h e" outranks "t h", so "the" is built as t + he.
    for a, b in [("h", "e"), ("t", "h"), ("t", "he"), ("th", "e"), ("Ġ", "t"), ("Ġt", "he"),
                 ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("1", "2"), ("12", "3"), ("a", "n"), ("an", "d"),
                 ("Ġ", "a"), ("r", "e"), ("th", "re"), ("e", "e"), ("thr", "ee"), ("th", "r"),
                 ("Ã", "©"), ("w", "o"), ("wo", "r"), ("wor", "d")]:
        merge(a, b)
    vocab["xyz"] = len(vocab)  # reachable only through ignore_merges
    split = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
             r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    added = [dict({"single_word": False, "lstrip": False, "rstrip": False}, **a) for a in SYNTHETIC_ADDED]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [vocab_size_after(vocab, 0)], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [vocab_size_after(vocab, 1)], "tokens": ["</s>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": True, "vocab": vocab, "merges": merges},
    }


def vocab_size_after(vocab, k):
    """The id Hugging Face gives the k-th new added token: ids follow the model's."""
    return len(vocab) + k


# --------------------------------------------------------------------- golden


class DryRunTokenizer:
    """Stands in for tokenizers.Tokenizer in --dry-run: code points as ids."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            json.load(f)

    def no_truncation(self):
        pass

    def no_padding(self):
        pass

    encode_special_tokens = False

    class _Enc:
        def __init__(self, ids):
            self.ids = ids

    def encode(self, text, add_special_tokens=True):
        ids = [ord(c) for c in text]
        return self._Enc(([1] if add_special_tokens else []) + ids)

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids if i < 0xD800 and not (skip_special_tokens and i == 1))

    def get_vocab_size(self, with_added_tokens=True):
        return 0x110000

    def token_to_id(self, token):
        return None


def load(tokenizers_dir, name, dry_run):
    path = os.path.join(tokenizers_dir, name, "tokenizer.json")
    if name == "synthetic":
        path = SYNTHETIC_PATH
    if dry_run:
        tok = DryRunTokenizer(path)
    else:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    tok.encode_special_tokens = False
    return tok


def byte_ids(tok):
    """The id of each byte's byte-level token, or None where there is none."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [tok.token_to_id(chr(table[b])) for b in range(256)]


def decode_cases(tok, rng, texts):
    """Id sequences whose decoding is interesting: random ids, cut characters, stray bytes."""
    size = tok.get_vocab_size(with_added_tokens=True)
    bids = byte_ids(tok)
    seqs = []
    for _ in range(300):
        seqs.append([rng.randrange(size) for _ in range(rng.randint(1, 12))])
    if all(b is not None for b in bids):
        for _ in range(300):
            seqs.append([bids[rng.randrange(256)] for _ in range(rng.randint(1, 8))])
        utf8 = "é中😀".encode("utf-8")
        for cut in range(1, len(utf8)):
            seqs.append([bids[b] for b in utf8[:cut]] + [bids[ord("a")]])
            seqs.append([bids[b] for b in utf8[cut:]])
        for bad in [[0xE2, 0x82], [0xE2, 0x82, 0x41], [0xF0, 0x9F, 0x98], [0xC0, 0xAF],
                    [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF], [0x80, 0x80],
                    [0xF0, 0x9F, 0x98, 0xF0, 0x9F, 0x98, 0x80], [0xE0, 0x80, 0x80]]:
            seqs.append([bids[b] for b in bad])
    seqs.append([size + 5, size + 1000])
    # Encodings of corpus strings with special tokens cut at every id.
    for t in texts:
        ids = tok.encode(t, add_special_tokens=True).ids
        for k in range(len(ids)):
            seqs.append(ids[:k])
    cases = []
    for ids in seqs:
        text = tok.decode(ids, skip_special_tokens=False)
        case = {"ids": ids, "text": text}
        skip = tok.decode(ids, skip_special_tokens=True)
        if skip != text:
            case["skip"] = skip
        cases.append(case)
    return cases


def golden(args):
    with open(args.corpus, encoding="utf-8") as f:
        corpus = json.load(f)
    if not args.dry_run:
        import tokenizers

        if not tokenizers.__version__.startswith("0.23."):
            sys.exit(f"want tokenizers 0.23.x, have {tokenizers.__version__}")
        version = tokenizers.__version__
    else:
        version = "dry-run"
    os.makedirs(args.out, exist_ok=True)
    failed = []
    for name in NAMES + ["synthetic"]:
        try:
            golden_one(args, name, corpus, version)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    if failed:
        sys.exit(f"failed: {failed}")


def golden_one(args, name, corpus, version):
    texts = [c["text"] for c in corpus]
    tok = load(args.tokenizers, name, args.dry_run)
    start = time.time()
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        case = {"ids": ids}
        # With special tokens: stored as what the post-processor put
        # around the ids, or in full where it is not a simple wrap.
        with_special = tok.encode(t, add_special_tokens=True).ids
        if with_special != ids:
            k = next((k for k in range(len(with_special) - len(ids) + 1)
                      if with_special[k : k + len(ids)] == ids), None)
            if k is None:
                case["special"] = with_special
            else:
                case["special_prefix"] = with_special[:k]
                case["special_suffix"] = with_special[k + len(ids) :]
        text = tok.decode(ids, skip_special_tokens=False)
        if text != t:
            case["text"] = text
        skip = tok.decode(ids, skip_special_tokens=True)
        if skip != text:
            case["skip"] = skip
        cases.append(case)
    rng = random.Random(7)
    specials = [c["text"] for c in corpus if c["kind"] == "special"][:12]
    probe = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
             "<|eot_id|>", "<tool_call>", "Ġthe", "hello", "Ġ", "!", "<unk>", "",
             "<s>", "</s>", "<L>", "th", "a b", "é?", "e\u0301?", "é!", "xyz", "<LRx>"]
    out = {
        "tokenizer": name,
        "tokenizers_version": version,
        "corpus_size": len(texts),
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "vocab_size_model": tok.get_vocab_size(with_added_tokens=False),
        "token_ids": {p: tok.token_to_id(p) for p in probe},
        "encode": cases,
        "decode": decode_cases(tok, rng, specials),
    }
    path = os.path.join(args.out, f"tokenizer_golden_{name}.json.gz")
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{name}: {len(cases)} strings, {len(out['decode'])} decode cases, "
          f"{time.time() - start:.1f}s -> {path} ({os.path.getsize(path)} bytes)", flush=True)


# ---------------------------------------------------------------------- bench


def bench_text(corpus):
    """The corpus's prose joined by blank lines, repeated to BENCH_BYTES."""
    unit = "\n\n".join(c["text"] for c in corpus if c["kind"] == "prose")
    reps = -(-BENCH_BYTES // len(unit.encode("utf-8")))
    return "\n\n".join([unit] * reps)


def bench(args):
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    with open(args.corpus, encoding="utf-8") as f:
        corpus = json.load(f)
    if args.text:
        with open(args.text, encoding="utf-8") as f:
            text = f.read()
    else:
        text = bench_text(corpus)
    size = len(text.encode("utf-8"))
    import tokenizers

    for name in NAMES:
        try:
            tok = load(args.tokenizers, name, False)
        except Exception:
            traceback.print_exc()
            continue
        n = len(tok.encode(text, add_special_tokens=False).ids)  # warm the BPE cache
        passages = text.split("\n\n")
        runs = {
            "text": lambda: tok.encode(text, add_special_tokens=False),
            "passages": lambda: [tok.encode(p, add_special_tokens=False) for p in passages],
        }
        for mode, run in runs.items():
            reps, start = 0, time.perf_counter()
            while reps < 2 or time.perf_counter() - start < 3:
                run()
                reps += 1
            sec = (time.perf_counter() - start) / reps
            print(f"hf-tokenizers {tokenizers.__version__} {name}/{mode}: {size / sec / 1e6:.2f} MB/s "
                  f"{n / sec / 1e6:.3f} Mtok/s ({size} bytes, {n} tokens, {reps} runs)", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus")
    c.add_argument("out")
    g = sub.add_parser("golden")
    g.add_argument("--corpus", required=True)
    g.add_argument("--tokenizers", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--dry-run", action="store_true")
    sub.add_parser("synthetic", help="write tokenizer/testdata/synthetic/tokenizer.json")
    b = sub.add_parser("bench")
    b.add_argument("--corpus", required=True)
    b.add_argument("--tokenizers", required=True)
    b.add_argument("--text")
    args = p.parse_args()
    if args.cmd == "corpus":
        corpus = build_corpus()
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(corpus, f, ensure_ascii=False, indent=0)
            f.write("\n")
        print(f"{len(corpus)} strings -> {args.out}")
    elif args.cmd == "synthetic":
        os.makedirs(os.path.dirname(SYNTHETIC_PATH), exist_ok=True)
        with open(SYNTHETIC_PATH, "w", encoding="utf-8") as f:
            json.dump(synthetic_tokenizer(), f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"-> {os.path.normpath(SYNTHETIC_PATH)}")
    elif args.cmd == "golden":
        golden(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
