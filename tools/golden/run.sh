#!/usr/bin/env bash
# Regenerates every golden fixture. Needs python3 with torch, transformers,
# peft, safetensors and tokenizers. Usage: tools/golden/run.sh [OUT]
# (default: a temporary folder, then copied into the packages' testdata).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$(mktemp -d)}
# Tokenizers: the corpus and the ids of the pinned tokenizer files (make tokenizers).
(cd "$root" && make tokenizers >/dev/null)
python3 "$here/tokenizer_golden.py" synthetic
python3 "$here/tokenizer_golden.py" corpus "$root/tokenizer/testdata/tokenizer_corpus.json"
python3 "$here/tokenizer_golden.py" golden --corpus "$root/tokenizer/testdata/tokenizer_corpus.json" \
	--tokenizers "$root/.cache/tokenizers" --out "$root/tokenizer/testdata"
# Models and training.
python3 "$here/models.py" "$out"
python3 "$here/lora.py" "$out"
python3 "$here/long.py" "$out"
python3 "$here/peft_init.py" "$out"
(cd "$root" && CGO_ENABLED=0 go build -o "$out/peftsave" ./tools/golden/peftsave)
"$out/peftsave" "$out/models/qwen2_untied/f32" "$out/roundtrip/adapter"
python3 "$here/peft_roundtrip.py" "$out"
find "$out/lora" -name README.md -delete   # PEFT's model-card template
rm -rf "$root/nn/testdata/models" "$root/lora/testdata/golden" "$root/lora/testdata/roundtrip"
mkdir -p "$root/nn/testdata" "$root/lora/testdata"
cp -r "$out/models" "$root/nn/testdata/models"
cp -r "$out/lora" "$root/lora/testdata/golden"
cp -r "$out/roundtrip" "$root/lora/testdata/roundtrip"
rm -rf "$root/nn/testdata/long" "$root/hf/testdata/tf5" "$root/lora/testdata/peft_init"
mkdir -p "$root/hf/testdata/tf5"
for m in qwen2_tied qwen2_untied llama3; do
	mkdir -p "$root/nn/testdata/long/$m" "$root/hf/testdata/tf5/$m"
	cp "$out/long/$m"/golden.* "$root/nn/testdata/long/$m/"
	cp "$out/long/$m/tf5/config.json" "$root/nn/testdata/long/$m/tf5_config.json"
	cp "$out/long/$m/tf5/config.json" "$root/hf/testdata/tf5/$m/config.json"
done
cp -r "$out/peft_init" "$root/lora/testdata/peft_init"
echo "fixtures written from $out"
