// Package msl turns Metal Shading Language source into something clang can
// compile: it finds the kernels and their argument bindings, rewrites the few
// constructs clang cannot parse, and builds the result against the shim of
// the Metal standard library (shim.h; SUBSET.md lists what is supported).
// It serves the MSL emulator in package metal and the strict shader check.
package msl

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ParamKind says where a kernel parameter's value comes from.
type ParamKind int

// The kinds of kernel parameters.
const (
	BufferParam      ParamKind = iota // [[buffer(n)]]: a buffer or set-bytes data
	ThreadgroupParam                  // [[threadgroup(n)]]: threadgroup memory of a set length
	BuiltinParam                      // a position or count such as [[thread_position_in_grid]]
)

// Param is one kernel parameter.
type Param struct {
	Name    string
	Type    string // as written, e.g. "device const float*"
	Kind    ParamKind
	Index   int    // n of [[buffer(n)]] or [[threadgroup(n)]]
	Builtin string // the attribute of a BuiltinParam
}

// Kernel is one kernel function of a library, under its host name.
type Kernel struct {
	Name   string
	Params []Param
	Line   int // where it is declared (or instantiated) in the source
	File   string

	call string // the C++ function to call: a name or a template-id
}

// builtins maps each supported position attribute to the expression that
// yields it as a uint3 (pos) or directly (scalar).
var builtins = map[string]string{
	"thread_position_in_grid":          "::__emu::grid_pos()",
	"threadgroup_position_in_grid":     "::__emu::grp->gpos",
	"thread_position_in_threadgroup":   "::__emu::cur->pos",
	"threads_per_threadgroup":          "::__emu::grp->tpg",
	"dispatch_threads_per_threadgroup": "::__emu::grp->tpg",
	"threadgroups_per_grid":            "::__emu::grp->ngroups",
	"threads_per_grid":                 "(::__emu::grp->ngroups * ::__emu::grp->tpg)",
	"thread_index_in_threadgroup":      "uint3(::__emu::cur->lid, 0, 0)",
	"simdgroup_index_in_threadgroup":   "uint3(::__emu::cur->sg, 0, 0)",
	"thread_index_in_simdgroup":        "uint3(::__emu::cur->lane, 0, 0)",
	"threads_per_simdgroup":            "uint3(32, 0, 0)",
	"simdgroups_per_threadgroup":       "uint3(::__emu::grp->nsimd, 0, 0)",
}

// otherAttrs are attributes that are accepted and ignored.
var otherAttrs = map[string]bool{"kernel": true, "host_name": true, "maybe_unused": true, "max_total_threads_per_threadgroup": true}

type tokKind int

const (
	tSpace tokKind = iota // whitespace and comments
	tDirective
	tIdent
	tNumber
	tString
	tPunct
)

type token struct {
	kind tokKind
	text string
	line int
	file string
}

// lex splits src into tokens, whitespace and comments included, tracking
// #line directives and the linemarkers of preprocessed output.
func lex(src, file string) ([]token, error) {
	var toks []token
	line := 1
	atLineStart := true
	for i := 0; i < len(src); {
		c := src[i]
		start := i
		kind := tPunct
		switch {
		case c == '\n' || c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
			kind = tSpace
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			kind = tSpace
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: unterminated comment", file, line)
			}
			i += end + 4
			kind = tSpace
		case c == '#' && atLineStart:
			for i < len(src) && src[i] != '\n' {
				if src[i] == '\\' && i+1 < len(src) && src[i+1] == '\n' {
					i++
				}
				i++
			}
			kind = tDirective
		case c == '"' || c == '\'':
			i++
			for i < len(src) && src[i] != c {
				if src[i] == '\\' {
					i++
				}
				if i < len(src) && src[i] == '\n' {
					return nil, fmt.Errorf("%s:%d: unterminated literal", file, line)
				}
				i++
			}
			i++
			if i > len(src) {
				return nil, fmt.Errorf("%s:%d: unterminated literal", file, line)
			}
			kind = tString
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			for i < len(src) && isIdent(src[i]) {
				i++
			}
			kind = tIdent
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
			for i < len(src) && (isIdent(src[i]) || src[i] == '.' ||
				(src[i] == '+' || src[i] == '-') && strings.ContainsRune("eEpP", rune(src[i-1]))) {
				i++
			}
			kind = tNumber
		case c == ':' && i+1 < len(src) && src[i+1] == ':':
			i += 2
		default:
			i++
		}
		t := token{kind: kind, text: src[start:i], line: line, file: file}
		toks = append(toks, t)
		if kind != tSpace {
			atLineStart = false
		} else if strings.Contains(t.text, "\n") {
			atLineStart = true
		}
		line += strings.Count(t.text, "\n")
		if kind == tDirective {
			if l, f, ok := lineMarker(t.text); ok {
				line, file = l-1, f // the directive's own newline follows
				if f == "" {
					file = t.file
				}
			}
		}
	}
	return toks, nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// lineMarker parses "#line N "file"" and the preprocessor's "# N "file" flags".
func lineMarker(d string) (int, string, bool) {
	f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(d), "#"))
	if len(f) > 0 && f[0] == "line" {
		f = f[1:]
	}
	if len(f) == 0 {
		return 0, "", false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, "", false
	}
	file := ""
	if len(f) > 1 {
		if s, err := strconv.Unquote(f[1]); err == nil {
			file = s
		}
	}
	return n, file, true
}

// Mode selects what the rewriter produces.
type Mode int

// The rewriter's modes.
const (
	Emulate Mode = iota // C++ for the emulator, with generated kernel entry points
	Strict              // OpenCL C++ for the strict address-space check
)

// Program is MSL source rewritten for clang.
type Program struct {
	Source  string   // the rewritten source
	Kernels []Kernel // every kernel with a host name, in source order
}

// Rewrite parses MSL source (preprocessed, or free of macros that generate
// kernels) named file and rewrites it for clang in the given mode. It strips
// attributes (rejecting unknown ones), turns attributed explicit template
// instantiations into plain ones, turns threadgroup declarations inside
// kernel bodies into references to per-threadgroup storage, and in Emulate
// mode appends an entry point per kernel that binds its arguments.
func Rewrite(src, file string, mode Mode) (*Program, error) {
	toks, err := lex(src, file)
	if err != nil {
		return nil, err
	}
	r := &rewriter{toks: toks, mode: mode, templates: map[string]bool{}}
	if err := r.run(); err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, t := range r.toks {
		b.WriteString(t.text)
	}
	if mode == Emulate {
		b.WriteString("\n")
		for _, k := range r.kernels {
			b.WriteString(entry(k))
		}
	}
	return &Program{Source: b.String(), Kernels: r.kernels}, nil
}

type rewriter struct {
	toks      []token
	mode      Mode
	kernels   []Kernel
	templates map[string]bool // names of kernel function templates
	tgDecls   int
}

// attr is one attribute of an attribute list.
type attr struct {
	name string
	args string
}

func (r *rewriter) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", t.file, t.line, fmt.Sprintf(format, args...))
}

// next returns the index of the first non-space token at or after i.
func (r *rewriter) next(i int) int {
	for i < len(r.toks) && (r.toks[i].kind == tSpace || r.toks[i].kind == tDirective) {
		i++
	}
	return i
}

func (r *rewriter) is(i int, text string) bool {
	return i < len(r.toks) && r.toks[i].kind != tSpace && r.toks[i].kind != tString && r.toks[i].text == text
}

// blank replaces tokens [i, j) with whitespace, keeping their newlines.
func (r *rewriter) blank(i, j int) {
	for k := i; k < j; k++ {
		if r.toks[k].kind == tDirective {
			continue
		}
		r.toks[k].text = strings.Repeat("\n", strings.Count(r.toks[k].text, "\n"))
		if r.toks[k].text == "" {
			r.toks[k].text = " "
		}
		r.toks[k].kind = tSpace
	}
}

// attribute parses the attribute list starting at i ("[[") and returns its
// attributes and the index after "]]".
func (r *rewriter) attribute(i int) ([]attr, int, error) {
	start := r.toks[i]
	depth := 0
	j := i
	for ; j < len(r.toks); j++ {
		switch r.toks[j].text {
		case "[":
			depth++
		case "]":
			depth--
		}
		if depth == 0 {
			break
		}
	}
	if j >= len(r.toks) {
		return nil, 0, r.errorf(start, "unterminated attribute")
	}
	// Tokens from i+2 to j-1 (before the final "]]").
	var text strings.Builder
	for k := r.next(i + 1 + 1); k < j-1; k++ {
		if r.toks[k].kind != tSpace {
			text.WriteString(r.toks[k].text)
		}
	}
	var attrs []attr
	for _, part := range splitTop(text.String()) {
		a := attr{name: part}
		if p := strings.IndexByte(part, '('); p >= 0 && strings.HasSuffix(part, ")") {
			a.name, a.args = part[:p], part[p+1:len(part)-1]
		}
		if _, ok := builtins[a.name]; !ok && !otherAttrs[a.name] && a.name != "buffer" && a.name != "threadgroup" {
			return nil, 0, r.errorf(start, "unknown attribute %q", a.name)
		}
		attrs = append(attrs, a)
	}
	return attrs, j + 1, nil
}

// splitTop splits s at commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, last := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '<':
			depth++
		case ')', '>':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[last:i])
				last = i + 1
			}
		}
	}
	if last < len(s) {
		out = append(out, s[last:])
	}
	return out
}

func (r *rewriter) isAttrStart(i int) bool {
	return r.is(i, "[") && i+1 < len(r.toks) && r.toks[i+1].text == "["
}

// vectorType matches Metal's vector type names.
var vectorType = regexp.MustCompile(`^(float|half|int|uint|short|ushort|char|uchar|long|ulong|bool)[234]$`)

// noVectorCasts rejects C-style casts to vector types: clang compiles them
// as bit casts where Metal converts values. float4(v) converts.
func (r *rewriter) noVectorCasts() error {
	for i := range r.toks {
		if !r.is(i, "(") {
			continue
		}
		ty := r.next(i + 1)
		if ty >= len(r.toks) || !vectorType.MatchString(r.toks[ty].text) || !r.is(r.next(ty+1), ")") {
			continue
		}
		if p := r.prevSignificant(i); p >= 0 && (r.toks[p].kind == tIdent || r.is(p, ">")) {
			continue // a call or declaration such as sizeof(float4)
		}
		return r.errorf(r.toks[i], "C-style cast to vector type %s: write %s(...), which converts", r.toks[ty].text, r.toks[ty].text)
	}
	return nil
}

// run walks the top level: declarations end at ";" or at a function body.
func (r *rewriter) run() error {
	if err := r.noVectorCasts(); err != nil {
		return err
	}
	i := 0
	for {
		i = r.next(i)
		if i >= len(r.toks) {
			return nil
		}
		end, err := r.declaration(i)
		if err != nil {
			return err
		}
		i = end
	}
}

// declaration handles one top-level declaration starting at i and returns
// the index after it.
func (r *rewriter) declaration(i int) (int, error) {
	var attrs []attr
	open := -1    // token index of the parameter list's "("
	nameTok := -1 // the token before it: the function's name or a template-id's ">"
	kernelKw := false
	template, explicit := false, false
	depth := 0 // parentheses
	for j := i; j < len(r.toks); j++ {
		t := r.toks[j]
		if t.kind == tSpace || t.kind == tDirective || t.kind == tString {
			continue
		}
		switch {
		case r.isAttrStart(j):
			a, end, err := r.attribute(j)
			if err != nil {
				return 0, err
			}
			if depth == 0 {
				attrs = append(attrs, a...)
				r.blank(j, end)
			}
			j = end - 1
		case t.text == "template" && j == i:
			template = true
			explicit = !r.is(r.next(j+1), "<")
		case t.text == "kernel" && depth == 0:
			kernelKw = true
		case t.text == "(":
			if depth == 0 && open < 0 {
				open = j
				nameTok = r.prevSignificant(j)
			}
			depth++
		case t.text == ")":
			depth--
		case t.text == ";" && depth == 0:
			return j + 1, r.finish(i, attrs, open, nameTok, kernelKw, template, explicit, false)
		case t.text == "{" && depth == 0:
			end, err := r.block(j, kernelKw || hasAttr(attrs, "kernel"))
			if err != nil {
				return 0, err
			}
			if err := r.finish(i, attrs, open, nameTok, kernelKw, template, explicit, true); err != nil {
				return 0, err
			}
			// A struct or enum definition continues to its ";".
			k := r.next(end)
			if open < 0 && k < len(r.toks) {
				for ; k < len(r.toks) && !r.is(k, ";"); k++ {
				}
				return k + 1, nil
			}
			return end, nil
		}
	}
	return len(r.toks), nil
}

func hasAttr(attrs []attr, name string) bool {
	for _, a := range attrs {
		if a.name == name {
			return true
		}
	}
	return false
}

func (r *rewriter) prevSignificant(j int) int {
	for k := j - 1; k >= 0; k-- {
		if r.toks[k].kind != tSpace && r.toks[k].kind != tDirective {
			return k
		}
	}
	return -1
}

// finish records the kernel, if any, that the declaration starting at token
// i declares; open is its parameter list's "(" (or -1).
func (r *rewriter) finish(i int, attrs []attr, open, nameTok int, kernelKw, template, explicit, body bool) error {
	isKernel := kernelKw || hasAttr(attrs, "kernel")
	if !isKernel || open < 0 {
		return nil
	}
	// The function's name: an identifier, or a template-id "f<...>".
	call, name := "", ""
	if r.is(nameTok, ">") {
		depth := 0
		k := nameTok
		for ; k > i; k-- {
			if r.is(k, ">") {
				depth++
			} else if r.is(k, "<") {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		fn := r.prevSignificant(k)
		name = r.toks[fn].text
		var b strings.Builder
		for m := fn; m < open; m++ {
			if r.toks[m].kind != tSpace {
				b.WriteString(r.toks[m].text)
			}
		}
		call = b.String()
	} else if nameTok >= 0 && r.toks[nameTok].kind == tIdent {
		name, call = r.toks[nameTok].text, r.toks[nameTok].text
	} else {
		return r.errorf(r.toks[open], "cannot find the kernel's name")
	}
	ps, err := r.params(open)
	if err != nil {
		return err
	}
	switch {
	case template && !explicit:
		r.templates[name] = true
		return nil
	case template && explicit:
		if body {
			return r.errorf(r.toks[i], "explicit instantiation with a body")
		}
		if !r.templates[name] {
			return r.errorf(r.toks[i], "instantiation of %s, which is not a kernel template defined above", name)
		}
		host := ""
		for _, a := range attrs {
			if a.name == "host_name" {
				s, err := strconv.Unquote(a.args)
				if err != nil {
					return r.errorf(r.toks[i], "host_name needs a string: %s", a.args)
				}
				host = s
			}
		}
		if host == "" {
			return r.errorf(r.toks[i], "instantiation of kernel %s without [[host_name(...)]]", name)
		}
		name = host
	}
	for _, k := range r.kernels {
		if k.Name == name {
			return r.errorf(r.toks[i], "kernel %s defined twice", name)
		}
	}
	r.kernels = append(r.kernels, Kernel{Name: name, Params: ps, Line: r.toks[i].line, File: r.toks[i].file, call: call})
	return nil
}

// params parses the parameter list opening at index open, strips its
// attributes and returns the parameters.
func (r *rewriter) params(open int) ([]Param, error) {
	var ps []Param
	var cur []int // significant token indexes of the current parameter
	var attrs []attr
	depth := 0
	flush := func(at token) error {
		if len(cur) == 0 {
			return nil
		}
		if len(cur) == 1 && r.toks[cur[0]].text == "void" {
			return nil
		}
		nameIdx := cur[len(cur)-1]
		if r.toks[nameIdx].kind != tIdent {
			return r.errorf(at, "kernel parameter without a name")
		}
		var typ []string
		for _, k := range cur[:len(cur)-1] {
			typ = append(typ, r.toks[k].text)
		}
		p := Param{Name: r.toks[nameIdx].text, Type: joinType(typ)}
		switch {
		case len(attrs) != 1:
			return r.errorf(at, "kernel parameter %s needs exactly one attribute", p.Name)
		case attrs[0].name == "buffer" || attrs[0].name == "threadgroup":
			n, err := strconv.Atoi(attrs[0].args)
			if err != nil || n < 0 || n > 30 {
				return r.errorf(at, "kernel parameter %s: bad index %q", p.Name, attrs[0].args)
			}
			p.Index = n
			p.Kind = BufferParam
			if attrs[0].name == "threadgroup" {
				p.Kind = ThreadgroupParam
			}
			if !strings.HasSuffix(p.Type, "*") && !strings.HasSuffix(p.Type, "&") {
				return r.errorf(at, "kernel parameter %s: a buffer must be a pointer or a reference", p.Name)
			}
		default:
			if _, ok := builtins[attrs[0].name]; !ok {
				return r.errorf(at, "kernel parameter %s: attribute %s is not an argument binding", p.Name, attrs[0].name)
			}
			p.Kind = BuiltinParam
			p.Builtin = attrs[0].name
		}
		ps = append(ps, p)
		cur, attrs = nil, nil
		return nil
	}
	for j := open + 1; j < len(r.toks); j++ {
		t := r.toks[j]
		if t.kind == tSpace || t.kind == tDirective {
			continue
		}
		switch {
		case r.isAttrStart(j):
			a, end, err := r.attribute(j)
			if err != nil {
				return nil, err
			}
			attrs = append(attrs, a...)
			r.blank(j, end)
			j = end - 1
			continue
		case t.text == "(" || t.text == "<":
			depth++
		case t.text == ">":
			depth--
		case t.text == ")":
			if depth == 0 {
				return ps, flush(t)
			}
			depth--
		case t.text == "," && depth == 0:
			if err := flush(t); err != nil {
				return nil, err
			}
			continue
		}
		cur = append(cur, j)
	}
	return nil, r.errorf(r.toks[open], "unterminated parameter list")
}

// joinType joins type tokens with single spaces, except around "*", "&",
// "::" and angle brackets.
func joinType(toks []string) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 && t != "*" && t != "&" && t != "::" && t != "<" && t != ">" && t != "," &&
			toks[i-1] != "::" && toks[i-1] != "<" {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	return b.String()
}

// block walks a brace block starting at "{" and returns the index after its
// "}". In kernels it rewrites threadgroup declarations.
func (r *rewriter) block(open int, kernel bool) (int, error) {
	depth := 0
	for j := open; j < len(r.toks); j++ {
		t := r.toks[j]
		if t.kind == tSpace || t.kind == tDirective || t.kind == tString {
			continue
		}
		switch {
		case r.isAttrStart(j):
			_, end, err := r.attribute(j)
			if err != nil {
				return 0, err
			}
			r.blank(j, end)
			j = end - 1
		case t.text == "{":
			depth++
		case t.text == "}":
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		case t.text == "threadgroup" && kernel:
			p := r.prevSignificant(j)
			if !r.is(p, ";") && !r.is(p, "{") && !r.is(p, "}") {
				continue
			}
			end, err := r.tgDecl(j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		}
	}
	return 0, r.errorf(r.toks[open], "unterminated block")
}

// tgDecl rewrites "threadgroup T name[dims];" at index i into a reference to
// per-threadgroup storage. Pointer declarations are left alone.
func (r *rewriter) tgDecl(i int) (int, error) {
	var sig []int
	inDims := false
	j := i + 1
	for ; j < len(r.toks) && !r.is(j, ";"); j++ {
		if r.toks[j].kind == tSpace || r.toks[j].kind == tDirective {
			continue
		}
		switch r.toks[j].text {
		case "[":
			inDims = true
		case "*", "&", "(", "=":
			if !inDims {
				return j, nil // a pointer or reference, not storage
			}
		case ",":
			return 0, r.errorf(r.toks[j], "declare one threadgroup variable per statement")
		}
		sig = append(sig, j)
	}
	if j >= len(r.toks) {
		return 0, r.errorf(r.toks[i], "unterminated declaration")
	}
	// Type tokens, then the name, then [dims].
	nameAt := -1
	for k, idx := range sig {
		if r.toks[idx].text == "[" {
			nameAt = k - 1
			break
		}
	}
	if nameAt < 0 {
		nameAt = len(sig) - 1
	}
	if nameAt < 1 || r.toks[sig[nameAt]].kind != tIdent {
		return 0, r.errorf(r.toks[i], "cannot parse threadgroup declaration")
	}
	text := func(idx []int) string {
		var b strings.Builder
		for _, k := range idx {
			b.WriteString(r.toks[k].text)
			b.WriteByte(' ')
		}
		return strings.TrimSpace(b.String())
	}
	typ, name, dims := text(sig[:nameAt]), r.toks[sig[nameAt]].text, text(sig[nameAt+1:])
	id := r.tgDecls
	r.tgDecls++
	if r.tgDecls > 64 {
		return 0, r.errorf(r.toks[i], "more than 64 threadgroup declarations")
	}
	what := strconv.Quote(fmt.Sprintf("%s (%s:%d)", name, r.toks[i].file, r.toks[i].line))
	repl := fmt.Sprintf("threadgroup %s (&%s)%s = *(threadgroup %s(*)%s)__emu_tg_alloc(%d, sizeof(%s%s), alignof(%s), %s)",
		typ, name, dims, typ, dims, id, typ, dims, typ, what)
	r.blank(i, j)
	r.toks[i] = token{kind: tIdent, text: repl, line: r.toks[i].line, file: r.toks[i].file}
	// The blanked tokens keep their newlines; the ";" stays a token of its own.
	return j + 1, nil
}

// entry generates the C entry point of kernel k, and __emu_a_NAME, the
// alignment of each [[buffer(n)]] parameter's data in parameter order.
func entry(k Kernel) string {
	var args, aligns []string
	for _, p := range k.Params {
		if p.Kind == BufferParam {
			aligns = append(aligns, fmt.Sprintf("alignof(%s)", strings.TrimRight(p.Type, "*&")))
		}
	}
	table := ""
	if len(aligns) > 0 {
		table = fmt.Sprintf("extern \"C\" __attribute__((visibility(\"default\"))) const unsigned __emu_a_%s[] = {%s};\n",
			k.Name, strings.Join(aligns, ", "))
	}
	for _, p := range k.Params {
		switch p.Kind {
		case BufferParam, ThreadgroupParam:
			src := fmt.Sprintf("::__emu::buffer(%d)", p.Index)
			if p.Kind == ThreadgroupParam {
				src = fmt.Sprintf("::__emu::tg_arg(%d)", p.Index)
			}
			if strings.HasSuffix(p.Type, "&") {
				args = append(args, fmt.Sprintf("*(%s*)%s", strings.TrimSuffix(p.Type, "&"), src))
			} else {
				args = append(args, fmt.Sprintf("(%s)%s", p.Type, src))
			}
		case BuiltinParam:
			args = append(args, fmt.Sprintf("::__emu::pos<%s>(%s)", p.Type, builtins[p.Builtin]))
		}
	}
	return table + fmt.Sprintf("extern \"C\" __attribute__((visibility(\"default\"))) void __emu_k_%s(void) { %s(%s); }\n",
		k.Name, k.call, strings.Join(args, ", "))
}
