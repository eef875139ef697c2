package eckconfig

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Change is one top-level key to set, so that a caller can state the end state it needs
// without caring how the file is written.
type Change struct {
	Key string
	// Value is the value as a YAML plain scalar, e.g. "8081", "true", "0.0.0.0", "/tmp/x".
	Value string
	// IfAbsent only adds the key when it is missing, so that a value the user set is never
	// overwritten. A null value (`key:` or `key: ~`) counts as missing: ECK uses its default.
	IfAbsent bool
	// Type is how ECK reads the value, for deciding whether what is written already means it
	// ("8081" for 8081, True for true); zero guesses it from Value.
	Type Type
}

// Type is how ECK converts a value (the caller's table of settings says which).
type Type int

// Types of values.
const (
	Guess Type = iota
	String
	Int
	Bool
)

// keyPattern is what Apply accepts as a key: every key ECK reads fits it, and it needs no
// quoting in block or flow YAML.
var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (c Change) validate() error {
	if !keyPattern.MatchString(c.Key) {
		return fmt.Errorf("%w: key %q is not a simple name", ErrInvalidChange, c.Key)
	}
	var doc yaml.Node
	err := yaml.Unmarshal([]byte("k: "+c.Value), &doc)
	if err != nil || len(doc.Content) == 0 || len(doc.Content[0].Content) != 2 {
		return fmt.Errorf("%w: %s: %q is not a plain YAML scalar", ErrInvalidChange, c.Key, c.Value)
	}
	v := doc.Content[0].Content[1]
	if v.Kind != yaml.ScalarNode || v.Style != 0 || v.Value != c.Value || v.Tag == "!!null" || v.LineComment != "" {
		return fmt.Errorf("%w: %s: %q is not a plain YAML scalar", ErrInvalidChange, c.Key, c.Value)
	}
	return nil
}

// Apply returns text with the changes applied, in order, and whether anything changed. It
// replaces only the source text of the values it changes and appends missing keys after the
// last top-level entry, so comments, order, indentation, line endings and the final newline
// survive. A value that already means the same to ECK ("8081" for 8081, True for true) is left
// as written. The result always parses and holds each key once; Apply is idempotent.
//
// A {flow: mapping} is edited in place too; only if that fails verification is it re-encoded
// through yaml.v3, which keeps its keys and values but not its layout.
func Apply(text string, changes ...Change) (string, bool, error) {
	key := applyKey(text, changes)
	if a, ok := applies.get(key); ok {
		return a.text, a.changed, a.err
	}
	out, changed, err := apply(text, changes)
	size := len(key)
	if changed {
		size += len(out)
	}
	applies.put(key, applied{out, changed, err}, size)
	return out, changed, err
}

func apply(text string, changes []Change) (string, bool, error) {
	for _, c := range changes {
		if err := c.validate(); err != nil {
			return text, false, err
		}
	}
	d, err := parse(text)
	if err != nil {
		return text, false, err
	}
	for _, c := range changes {
		next, err := d.apply(c)
		if err != nil {
			return text, false, fmt.Errorf("failed to set %s: %w", c.Key, err)
		}
		if next != nil {
			d = next
		}
	}
	if d.src.text == text {
		return text, false, nil
	}
	if err := d.decodable(); err != nil { // the edits were checked one by one, without this
		return text, false, fmt.Errorf("%w: the edits broke the document: %w", ErrUnsupported, err)
	}
	return d.src.text, true, nil
}

// errAliased refuses to replace a value that other keys share through an alias.
var errAliased = fmt.Errorf("%w: other keys refer to its value through an alias", ErrUnsupported)

// apply returns the document with c applied, or nil if c changes nothing.
func (d *document) apply(c Change) (*document, error) {
	e := d.lookup(c.Key)
	if e != nil && !isNull(e.value) && (c.IfAbsent || sameValue(c.Type, c.Value, e.value)) {
		return nil, nil
	}
	var text string
	if e == nil {
		text = d.appendEntry(c)
	} else if aliasedFromOutside(d.root, e.value) {
		return nil, errAliased
	} else {
		text = d.replace(e, c)
	}
	next, err := d.verify(text, c)
	if err != nil && d.flow {
		if text, err = d.reencode(c); err == nil {
			next, err = d.verify(text, c)
		}
	}
	return next, err
}

// replace returns the text with e's value replaced by c.Value. Only the value's source text
// goes (its anchor and tag too); a trailing comment on its line stays.
func (d *document) replace(e *entry, c Change) string {
	s, v := d.src, e.value
	start, end, prefix := s.offset(v), 0, ""
	switch {
	case isEmpty(v):
		end, _ = s.props(v, d.flow)
	case isBlockCollection(v):
		end = s.nodeEnd(v, d.indent, false)
	default:
		end = s.nodeEnd(v, d.indent, d.flow)
	}
	keyEnd := s.nodeEnd(e.key, d.indent, d.flow)
	colon := s.skipFiller(keyEnd, false)
	switch {
	case colon >= len(s.text) || s.text[colon] != ':':
		// A key without a colon (`{key}`, or `? key` alone) has a null value: add the colon.
		start, end, prefix = keyEnd, keyEnd, ": "
		if !d.flow {
			prefix = s.eol() + strings.Repeat(" ", d.indent) + prefix
		}
	case s.lineOf(colon) != s.lineOf(start) || start == colon+1:
		// Write the scalar right after the colon: on a line of its own it could sit at the
		// key's indentation, which only a block collection or block scalar may.
		start, prefix = colon+1, " "
	}
	return s.text[:start] + prefix + render(c.Value, v.Style, d.flow) + s.text[end:]
}

// appendEntry returns the text with `key: value` added after the last top-level entry.
func (d *document) appendEntry(c Change) string {
	s := d.src
	line := c.Key + ": " + render(c.Value, 0, d.flow)
	if d.flow {
		_, p := s.props(d.root, true)
		if n := len(d.root.Content); n > 0 {
			p, line = s.nodeEnd(d.root.Content[n-1], -1, true), ", "+line
		} else {
			p++ // past the {
		}
		return s.text[:p] + line + s.text[p:]
	}
	floor, tail := -1, &yaml.Node{}
	if n := len(d.entries); n > 0 {
		floor, tail = s.nodeEnd(d.entries[n-1].value, d.indent, false), lastLeaf(d.entries[n-1].value)
	}
	p := s.documentEnd(floor)
	if !keepsTrailingLines(s, tail) {
		p = s.blankTail(p, floor)
	}
	if isBlockScalar(tail) && !s.atLineStart(p) {
		// A line break after a block scalar would become part of it: go before its key instead.
		p = s.lines[s.lineOf(s.offset(d.entries[len(d.entries)-1].key))]
	}
	line = strings.Repeat(" ", max(d.indent, 0)) + line
	if s.atLineStart(p) {
		line += s.eol()
	} else {
		line = s.eol() + line
	}
	return s.text[:p] + line + s.text[p:]
}

// documentEnd returns where a `...` document end marker after floor starts, or the end of text.
func (s *source) documentEnd(floor int) int {
	for _, start := range s.lines {
		if start > floor && strings.HasPrefix(s.text[start:], "...") && s.isBlankZ(start+3) {
			return start
		}
	}
	return len(s.text)
}

// blankTail moves p back over the blank lines before it, but not to floor or before, so that
// added keys follow the last entry rather than trailing blank lines.
func (s *source) blankTail(p, floor int) int {
	for k := s.lineOf(p); k > 0 && s.lines[k] > floor; k-- {
		if strings.Trim(s.text[s.lines[k]:p], blanks) != "" {
			break
		}
		p = s.lines[k]
	}
	return p
}

// lastLeaf returns the node whose text ends n.
func lastLeaf(n *yaml.Node) *yaml.Node {
	for isBlockCollection(n) && len(n.Content) > 0 {
		n = n.Content[len(n.Content)-1]
	}
	return n
}

func isBlockScalar(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0
}

// keepsTrailingLines reports a `|+` or `>+` block scalar, whose trailing blank lines are content.
func keepsTrailingLines(s *source, n *yaml.Node) bool {
	if !isBlockScalar(n) {
		return false
	}
	_, p := s.props(n, false)
	header := s.text[p:]
	if i := strings.IndexAny(header, " \t\r\n#"); i >= 0 {
		header = header[:i]
	}
	return strings.Contains(header, "+")
}

// render writes value as a scalar, keeping the quote character the old value used.
func render(value string, old yaml.Style, flow bool) string {
	switch {
	case old&yaml.SingleQuotedStyle != 0:
		return "'" + strings.ReplaceAll(value, "'", "''") + "'"
	case old&yaml.DoubleQuotedStyle != 0, flow && strings.ContainsAny(value, ",[]{}"):
		return strconv.Quote(value)
	}
	return value
}

// reencode sets c through yaml.v3's Node API and re-encodes the whole document: the fallback
// for flow mappings that could not be edited in place.
func (d *document) reencode(c Change) (string, error) {
	value := &yaml.Node{Kind: yaml.ScalarNode, Value: c.Value}
	if e := d.lookup(c.Key); e != nil {
		*e.value = *value
	} else {
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: c.Key}
		d.root.Content = append(d.root.Content, key, value)
	}
	walk(d.root, nil, func(n *yaml.Node) {
		if isEmpty(n) && n.Tag == "!!null" {
			n.Value = "null" // yaml.v3 would encode an empty null as ''
		}
	})
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(d.root); err != nil {
		return "", fmt.Errorf("failed to encode the document: %w", err)
	}
	out := strings.ReplaceAll(b.String(), "\n", d.src.eol())
	if !strings.HasSuffix(d.src.text, d.src.eol()) {
		out = strings.TrimSuffix(out, d.src.eol())
	}
	return out, nil
}

// verify parses the edited text and checks that it differs from d only by c: c.Key is there
// once and means c.Value, and every other key is still there, in order, with the same value.
func (d *document) verify(text string, c Change) (*document, error) {
	next, err := load(text)
	if err != nil {
		return nil, fmt.Errorf("%w: the edit broke the document: %w", ErrUnsupported, err)
	}
	e := next.lookup(c.Key)
	was, now := others(d.entries, c.Key), others(next.entries, c.Key)
	ok := e != nil && sameValue(c.Type, c.Value, e.value) && len(was) == len(now)
	for i := 0; ok && i < len(was); i++ {
		ok = equalNode(was[i].key, now[i].key) && equalNode(was[i].value, now[i].value)
	}
	if !ok {
		return nil, fmt.Errorf("%w: the edit changed more than its value", ErrUnsupported)
	}
	return next, nil
}

// others returns the entries but key's.
func others(entries []entry, key string) []entry {
	fold := strings.ToLower(key)
	rest := make([]entry, 0, len(entries))
	for _, e := range entries {
		if e.fold != fold {
			rest = append(rest, e)
		}
	}
	return rest
}

// equalNode compares what two nodes mean, not how they are written.
func equalNode(a, b *yaml.Node) bool {
	if a.Tag == "!!null" && b.Tag == "!!null" {
		return true // ~, null and nothing at all
	}
	if a.Kind != b.Kind || a.Tag != b.Tag || a.Value != b.Value || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Content {
		if !equalNode(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// aliasedFromOutside reports whether an alias outside v refers to an anchor inside it, so
// that replacing v would change, or break, another key.
func aliasedFromOutside(root, v *yaml.Node) bool {
	anchors := map[*yaml.Node]bool{}
	walk(v, nil, func(n *yaml.Node) {
		if n.Anchor != "" {
			anchors[n] = true
		}
	})
	found := false
	if len(anchors) > 0 {
		walk(root, v, func(n *yaml.Node) {
			found = found || n.Kind == yaml.AliasNode && anchors[n.Alias]
		})
	}
	return found
}

// walk calls fn on n and its descendants, not following aliases and skipping skip.
func walk(n, skip *yaml.Node, fn func(*yaml.Node)) {
	if n == skip {
		return
	}
	fn(n)
	for _, c := range n.Content {
		walk(c, skip, fn)
	}
}

// sameValue reports whether v means want to ECK: integers and booleans compare as viper casts
// them, anything else as decoded strings.
func sameValue(typ Type, want string, v *yaml.Node) bool {
	got, ok := scalar(v)
	if !ok {
		return false
	}
	_, wantIntErr := parseInt(want)
	_, wantBoolErr := strconv.ParseBool(want)
	switch {
	case typ == Int || typ == Guess && wantIntErr == nil:
		a, errA := parseInt(got)
		b, errB := parseInt(want)
		return errA == nil && errB == nil && a == b
	case typ == Bool || typ == Guess && wantBoolErr == nil:
		a, errA := strconv.ParseBool(got)
		b, errB := strconv.ParseBool(want)
		return errA == nil && errB == nil && a == b
	}
	return got == want
}
