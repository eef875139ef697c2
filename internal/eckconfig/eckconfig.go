// Package eckconfig reads and edits ECK's operator configuration file, eck.yaml.
//
// ECK loads eck.yaml through viper and fails on a duplicated key, and users keep comments and
// settings of their own in it. So the package edits the text structurally: yaml.v3 nodes locate
// a top-level value, only that value's source text is replaced, and every other byte survives.
package eckconfig

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

var (
	// ErrInvalidYAML marks text that ECK's own loader would refuse, so the operator is broken already.
	ErrInvalidYAML = errors.New("invalid yaml")
	// ErrNotMapping marks a document that is not a single mapping (a list, a scalar, several
	// documents), which ECK cannot read settings from.
	ErrNotMapping = errors.New("not a yaml mapping")
	// ErrInvalidChange marks a Change whose key or value cannot be written as a plain YAML scalar.
	ErrInvalidChange = errors.New("invalid change")
	// ErrUnsupported marks valid YAML that this package will not edit in place, because doing so
	// would change more than the one value (for example an anchor that other keys refer to).
	ErrUnsupported = errors.New("cannot edit in place")
)

// DuplicateKeyError reports a top-level key written twice: ECK refuses to start with it, and
// the caller should tell the user where both copies are.
type DuplicateKeyError struct {
	Key                   string
	FirstLine, SecondLine int
}

// Error names the key and both lines.
func (e *DuplicateKeyError) Error() string {
	return fmt.Sprintf("duplicate key %q at lines %d and %d", e.Key, e.FirstLine, e.SecondLine)
}

// Config is a parsed, read-only view of eck.yaml's top-level keys, so that callers can read
// the settings ECK will see without knowing YAML. Keys match case-insensitively, as in viper.
type Config struct {
	entries []entry
	// byFold indexes entries by their folded key, so that a lookup costs the same in a file
	// of ten keys and in one of tens of thousands.
	byFold map[string]int
}

// entry is one top-level key and its value.
type entry struct {
	name       string // the key as written
	fold       string // the key as viper compares it
	key, value *yaml.Node
}

// Parse reads eck.yaml and refuses what ECK would refuse, so that a Config always describes a
// file the operator can load. An empty or comments-only document is an empty Config.
// The result of a recent text is shared (see memo.go): a Config is read-only.
func Parse(text string) (*Config, error) {
	return parseMemo(text)
}

// Keys returns the top-level keys as written, in document order, so that reports can list
// what the user configured.
func (c *Config) Keys() []string {
	keys := make([]string, len(c.entries))
	for i, e := range c.entries {
		keys[i] = e.name
	}
	return keys
}

// String returns the decoded scalar value of a top-level key (quotes removed). It reports
// false when the key is absent, null (ECK then uses its default) or not a scalar.
func (c *Config) String(key string) (string, bool) {
	if e := c.lookup(key); e != nil {
		return scalar(e.value)
	}
	return "", false
}

// Int returns a top-level key as ECK reads an int: viper casts both 8081 and "8081". The
// error names the key and the value ECK could not use.
func (c *Config) Int(key string) (int, bool, error) {
	s, ok, err := c.scalarOf(key, "an integer")
	if !ok || err != nil {
		return 0, ok, err
	}
	n, err := parseInt(s)
	if err != nil {
		return 0, true, fmt.Errorf("%s: %q is not an integer", key, s)
	}
	return n, true, nil
}

// Bool returns a top-level key as ECK reads a bool: viper casts true and "true" alike, with
// strconv.ParseBool semantics, so "yes" is an error rather than true.
func (c *Config) Bool(key string) (bool, bool, error) {
	s, ok, err := c.scalarOf(key, "a boolean")
	if !ok || err != nil {
		return false, ok, err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, true, fmt.Errorf("%s: %q is not a boolean", key, s)
	}
	return b, true, nil
}

// scalarOf returns key's scalar value, whether it is set, and an error naming want if the
// value is a list or a mapping.
func (c *Config) scalarOf(key, want string) (string, bool, error) {
	e := c.lookup(key)
	if e == nil || isNull(e.value) {
		return "", false, nil
	}
	s, ok := scalar(e.value)
	if !ok {
		return "", true, fmt.Errorf("%s: want %s, got a %s", key, want, kindName(resolve(e.value)))
	}
	return s, true, nil
}

func (c *Config) lookup(key string) *entry {
	if i, ok := c.byFold[strings.ToLower(key)]; ok {
		return &c.entries[i]
	}
	return nil
}

// document is parsed eck.yaml together with its source, for editing.
type document struct {
	Config
	src    *source
	root   *yaml.Node // the top-level mapping; nil for an empty document
	indent int        // column of the top-level keys, as libyaml counts indentation
	flow   bool       // the top-level mapping is written {like: this}
}

// parse reads text and refuses what ECK would refuse.
func parse(text string) (*document, error) {
	d, err := load(text)
	if err == nil {
		err = d.decodable()
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// load reads text as one mapping without duplicate top-level keys.
func load(text string) (*document, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalidYAML)
	}
	d := &document{src: newSource(text)}
	dec := yaml.NewDecoder(strings.NewReader(text))
	var doc, next yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return d, nil
	} else if err != nil {
		return nil, invalid(err)
	}
	if err := dec.Decode(&next); err == nil {
		return nil, fmt.Errorf("%w: found several documents", ErrNotMapping)
	} else if err != io.EOF {
		return nil, invalid(err)
	}
	root := doc.Content[0]
	if isEmpty(root) && root.Tag == "!!null" {
		return d, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: the document is a %s", ErrNotMapping, kindName(root))
	}
	if err := d.index(root); err != nil {
		return nil, err
	}
	return d, nil
}

// decodable refuses what ECK's loader (viper, with yaml.v3) would refuse below the top level,
// such as a duplicated nested key, in time linear in the size of the document: yaml.v3's own
// duplicate check compares every key of a mapping with every other, which a padded eck.yaml
// of tens of thousands of keys turns into seconds. So duplicates are found here with a set
// per mapping, and yaml.v3 decodes each top-level value on its own (for its other checks:
// tags, merge keys) only when that value is small.
func (d *document) decodable() error {
	if d.root == nil {
		return nil
	}
	for _, e := range d.entries {
		if err := uniqueKeys(e.value, 0); err != nil {
			return err
		}
		if size(e.value, maxDecoded) >= maxDecoded {
			continue
		}
		var v any
		if err := e.value.Decode(&v); err != nil {
			return invalid(err)
		}
	}
	return nil
}

// maxDecoded is the size of a top-level value, in nodes, above which yaml.v3 does not decode
// it (its duplicate check is quadratic; uniqueKeys has done that part).
const maxDecoded = 256

// maxDepth bounds the nesting uniqueKeys follows, as yaml.v3's own decoder does.
const maxDepth = 10000

// uniqueKeys refuses a mapping, anywhere below n, with a key written twice. Aliases are not
// followed: what they point to is checked where it is written.
func uniqueKeys(n *yaml.Node, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested too deeply", ErrInvalidYAML)
	}
	if n.Kind == yaml.MappingNode {
		seen := make(map[[3]string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode {
				id := [3]string{k.Tag, k.Value, ""}
				if k.Tag == "!!merge" {
					id[2] = fmt.Sprint(i) // several merge keys are allowed
				}
				if first, dup := seen[id]; dup {
					return fmt.Errorf("%w: line %d: mapping key %q already defined at line %d", ErrInvalidYAML, k.Line, k.Value, first)
				}
				seen[id] = k.Line
			}
		}
	}
	for _, c := range n.Content {
		if err := uniqueKeys(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// size counts the nodes of n, stopping at limit.
func size(n *yaml.Node, limit int) int {
	count := 1
	for _, c := range n.Content {
		if count >= limit {
			break
		}
		count += size(c, limit-count)
	}
	return count
}

// index records the top-level entries of root and refuses duplicates.
func (d *document) index(root *yaml.Node) error {
	d.root = root
	d.flow = root.Style&yaml.FlowStyle != 0
	d.indent = -1
	if !d.flow && len(root.Content) > 0 {
		d.indent = d.src.blockIndent(root)
	}
	d.byFold = make(map[string]int, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		key := root.Content[i]
		name, ok := scalar(key)
		if !ok {
			return fmt.Errorf("%w: line %d: a top-level key must be a string", ErrInvalidYAML, key.Line)
		}
		if key.Tag == "!!merge" {
			// yaml.v3 merges the keys, and viper then folds their case in an order of its own:
			// which value ECK reads cannot be told from the text.
			return fmt.Errorf("%w: line %d: a merge key (<<) at the top level, whose keys ECK may read over the others", ErrUnsupported, key.Line)
		}
		fold := strings.ToLower(name)
		if first, dup := d.byFold[fold]; dup {
			return &DuplicateKeyError{Key: name, FirstLine: d.entries[first].key.Line, SecondLine: key.Line}
		}
		d.byFold[fold] = len(d.entries)
		d.entries = append(d.entries, entry{name: name, fold: fold, key: key, value: root.Content[i+1]})
	}
	return nil
}

func invalid(err error) error {
	return fmt.Errorf("%w: %s", ErrInvalidYAML, strings.TrimPrefix(err.Error(), "yaml: "))
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// scalar returns the decoded value of a non-null scalar.
func scalar(n *yaml.Node) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// isEmpty reports a scalar with no source text, like the value of `key:`.
func isEmpty(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "" &&
		n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.AliasNode:
		return "alias"
	}
	return "scalar"
}

// parseInt reads an integer the way spf13/cast does for viper: base prefixes allowed.
func parseInt(s string) (int, error) {
	n, err := strconv.ParseInt(s, 0, 0)
	return int(n), err
}

// Value returns a top-level key's value decoded as viper decodes eck.yaml (with yaml.v3 into
// an interface): a bool, an int, a float64, a string, or a list or map. It reports false when
// the key is absent or null (ECK then uses its default).
func (c *Config) Value(key string) (any, bool) {
	e := c.lookup(key)
	if e == nil || isNull(e.value) {
		return nil, false
	}
	var v any
	if err := resolve(e.value).Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}
