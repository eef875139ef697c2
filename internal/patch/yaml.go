package patch

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"gomodules.xyz/jsonpatch/v2"
)

// ApplyYAML applies add and replace operations to a YAML document in place. Comments,
// key order and the style of the scalars it replaces are kept.
func ApplyYAML(doc *yaml.Node, ops []jsonpatch.Operation) error {
	root := doc
	if root.Kind == yaml.DocumentNode {
		root = root.Content[0]
	}
	for _, op := range ops {
		if err := apply(root, op); err != nil {
			return fmt.Errorf("failed to %s %s: %w", op.Operation, op.Path, err)
		}
	}
	return nil
}

func apply(root *yaml.Node, op jsonpatch.Operation) error {
	if op.Operation != "add" && op.Operation != "replace" {
		return fmt.Errorf("unsupported operation")
	}
	tokens := pointer(op.Path)
	if len(tokens) == 0 {
		return fmt.Errorf("cannot replace the whole document")
	}
	parent, err := walk(root, tokens[:len(tokens)-1])
	if err != nil {
		return err
	}
	value, err := toNode(op.Value)
	if err != nil {
		return err
	}
	last := tokens[len(tokens)-1]
	switch parent.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(parent.Content); i += 2 {
			if parent.Content[i].Value == last {
				keepStyle(parent.Content[i+1], value)
				parent.Content[i+1] = value
				return nil
			}
		}
		parent.Style &^= yaml.FlowStyle
		parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: last}, value)
		return nil
	case yaml.SequenceNode:
		if last == "-" {
			parent.Content = append(parent.Content, value)
			return nil
		}
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i > len(parent.Content) {
			return fmt.Errorf("index %q out of range", last)
		}
		switch {
		case op.Operation == "replace" && i < len(parent.Content):
			keepStyle(parent.Content[i], value)
			parent.Content[i] = value
		case i == len(parent.Content):
			parent.Content = append(parent.Content, value)
		default:
			parent.Content = append(parent.Content[:i], append([]*yaml.Node{value}, parent.Content[i:]...)...)
		}
		return nil
	}
	return fmt.Errorf("parent is not a mapping or a list")
}

func walk(n *yaml.Node, tokens []string) (*yaml.Node, error) {
	for _, t := range tokens {
		n = resolve(n)
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == t {
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return nil, fmt.Errorf("no key %q", t)
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil, fmt.Errorf("index %q out of range", t)
			}
			n = n.Content[i]
		default:
			return nil, fmt.Errorf("cannot descend into a scalar at %q", t)
		}
	}
	return resolve(n), nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// pointer splits a JSON pointer (RFC 6901) into its unescaped tokens.
func pointer(p string) []string {
	if p == "" || p == "/" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts
}

// toNode converts a JSON value to YAML through its JSON text, which YAML reads as is,
// so that numbers stay integers; then it drops JSON's flow style.
func toNode(v any) (*yaml.Node, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	n := doc.Content[0]
	setStyles(n)
	return n, nil
}

// setStyles writes block style, and multi-line strings as literal blocks, as people
// write eck.yaml.
func setStyles(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, "\n") {
		n.Style = yaml.LiteralStyle
	}
	for _, c := range n.Content {
		setStyles(c)
	}
}

// keepStyle gives a replacing scalar the quoting of the scalar it replaces, when that
// quoting can hold the new value.
func keepStyle(old, value *yaml.Node) {
	if old.Kind != yaml.ScalarNode || value.Kind != yaml.ScalarNode || old.Tag != value.Tag {
		return
	}
	if strings.Contains(value.Value, "\n") && old.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		return
	}
	value.Style = old.Style
	value.HeadComment, value.LineComment, value.FootComment = old.HeadComment, old.LineComment, old.FootComment
}
