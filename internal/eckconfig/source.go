package eckconfig

import (
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// source is YAML text with the line index that yaml.v3 positions refer to. yaml.v3 gives a
// node's start but not its end, so the scanners below find ends by following the rules of
// yaml.v3's own scanner (scannerc.go) for the token at hand.
type source struct {
	text  string
	lines []int // byte offset of the start of each line
}

const bom = "\ufeff"

// blanks are the characters a blank line may hold, line breaks included.
const blanks = " \t\r\n\u0085\u2028\u2029"

func newSource(text string) *source {
	s := &source{text: text, lines: []int{0}}
	if strings.HasPrefix(text, bom) {
		s.lines[0] = len(bom) // yaml.v3 skips the byte order mark without counting a column
	}
	for i := s.lines[0]; i < len(text); i++ {
		if w := breakWidth(text, i); w > 0 {
			i += w - 1
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

// breakWidth returns the length of the line break at i, or 0. Like yaml.v3, it counts CRLF
// as one break and also breaks lines at a lone CR, NEL, LS and PS.
func breakWidth(t string, i int) int {
	switch {
	case i >= len(t):
		return 0
	case t[i] == '\r' && i+1 < len(t) && t[i+1] == '\n':
		return 2
	case t[i] == '\r' || t[i] == '\n':
		return 1
	case strings.HasPrefix(t[i:], "\u0085"):
		return 2
	case strings.HasPrefix(t[i:], "\u2028"), strings.HasPrefix(t[i:], "\u2029"):
		return 3
	}
	return 0
}

// eol returns the file's first line break, so that added lines match it (CRLF stays CRLF).
func (s *source) eol() string {
	if i := strings.IndexAny(s.text, "\r\n"); i >= 0 {
		return s.text[i : i+breakWidth(s.text, i)]
	}
	return "\n"
}

func (s *source) isBlank(i int) bool {
	return i < len(s.text) && (s.text[i] == ' ' || s.text[i] == '\t')
}
func (s *source) isBreakZ(i int) bool { return i >= len(s.text) || breakWidth(s.text, i) > 0 }
func (s *source) isBlankZ(i int) bool { return s.isBlank(i) || s.isBreakZ(i) }

// lineOf returns the index of the line holding byte offset p.
func (s *source) lineOf(p int) int {
	return max(sort.SearchInts(s.lines, p+1)-1, 0)
}

// column returns the 0-based column of byte offset p, counted in characters as yaml.v3 does.
func (s *source) column(p int) int {
	start := s.lines[s.lineOf(p)]
	if p < start {
		return 0
	}
	return utf8.RuneCountInString(s.text[start:p])
}

func (s *source) atLineStart(p int) bool {
	i := s.lineOf(p)
	return s.lines[i] == p || p == 0
}

// offset returns the byte offset of n's first character (an anchor or tag if it has one).
func (s *source) offset(n *yaml.Node) int {
	if n.Line < 1 || n.Line > len(s.lines) {
		return len(s.text)
	}
	p := s.lines[n.Line-1]
	for col := 1; col < n.Column && p < len(s.text); col++ {
		_, w := utf8.DecodeRuneInString(s.text[p:])
		p += w
	}
	return p
}

// skipFiller skips blanks, line breaks, comments and, inside flow collections, commas.
func (s *source) skipFiller(p int, commas bool) int {
	t := s.text
	for p < len(t) {
		switch {
		case s.isBlank(p) || commas && t[p] == ',':
			p++
		case t[p] == '#':
			for !s.isBreakZ(p) {
				p++
			}
		default:
			w := breakWidth(t, p)
			if w == 0 {
				return p
			}
			p += w
		}
	}
	return p
}

// props returns where n's anchor and tag end (n's start if it has none) and where its content
// starts. Only call it for scalars, aliases and flow collections: a block collection starts
// at its first child, whose properties are not its own.
func (s *source) props(n *yaml.Node, flow bool) (end, content int) {
	t := s.text
	p := s.offset(n)
	end, content = p, p
	for p < len(t) && (t[p] == '&' || t[p] == '!') {
		switch {
		case t[p] == '&':
			p += 1 + len(n.Anchor)
		case strings.HasPrefix(t[p:], "!<"):
			p += strings.IndexByte(t[p:], '>') + 1
		default:
			for !s.isBlankZ(p) && !(flow && t[p] == ',') {
				p++
			}
		}
		end = p
		p = s.skipFiller(p, false)
		content = p
	}
	return end, content
}

// nodeEnd returns the byte offset just past n's source text, trailing comments excluded.
// indent is the indentation of the block collection holding n (-1 at the top of a flow
// document), which plain and block scalars need to know where they stop.
func (s *source) nodeEnd(n *yaml.Node, indent int, flow bool) int {
	if isBlockCollection(n) {
		if len(n.Content) == 0 {
			return s.offset(n)
		}
		return s.nodeEnd(n.Content[len(n.Content)-1], s.blockIndent(n), false)
	}
	propsEnd, p := s.props(n, flow)
	switch {
	case n.Kind == yaml.AliasNode:
		return p + 1 + len(n.Value)
	case n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode:
		return s.flowEnd(n, p)
	case n.Style&yaml.DoubleQuotedStyle != 0:
		return s.doubleQuotedEnd(p)
	case n.Style&yaml.SingleQuotedStyle != 0:
		return s.singleQuotedEnd(p)
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return s.blockScalarEnd(p, indent)
	case isEmpty(n):
		return propsEnd
	}
	return s.plainEnd(p, indent, flow)
}

func isBlockCollection(n *yaml.Node) bool {
	return (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) && n.Style&yaml.FlowStyle == 0
}

// flowEnd returns the end of a flow collection whose content starts at p.
func (s *source) flowEnd(n *yaml.Node, p int) int {
	open := p < len(s.text) && (s.text[p] == '[' || s.text[p] == '{')
	if !open { // a single `key: value` pair inside a flow list has no braces
		return s.nodeEnd(n.Content[len(n.Content)-1], -1, true)
	}
	p++
	if len(n.Content) > 0 {
		p = s.nodeEnd(n.Content[len(n.Content)-1], -1, true)
	}
	return min(s.skipFiller(p, true)+1, len(s.text))
}

// blockIndent returns libyaml's indentation of a block collection: the column of its first
// key (or of the `?` before it), or of the `-` before its first item.
func (s *source) blockIndent(n *yaml.Node) int {
	indicator := byte('?')
	if n.Kind == yaml.SequenceNode {
		indicator = '-'
	}
	if p := s.offset(n); p < len(s.text) && s.text[p] == indicator {
		return s.column(p)
	}
	first := s.offset(n.Content[0]) // n has an anchor or tag: look just before its first child
	p := first
	for p > 0 && s.isBlank(p-1) {
		p--
	}
	if p > 0 && s.text[p-1] == indicator {
		return s.column(p - 1)
	}
	return s.column(first)
}

func (s *source) doubleQuotedEnd(p int) int {
	for i := p + 1; i < len(s.text); i++ {
		switch s.text[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(s.text)
}

func (s *source) singleQuotedEnd(p int) int {
	for i := p + 1; i < len(s.text); i++ {
		if s.text[i] == '\'' {
			if i+1 < len(s.text) && s.text[i+1] == '\'' {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(s.text)
}

// plainEnd mirrors yaml_parser_scan_plain_scalar.
func (s *source) plainEnd(p, indent int, flow bool) int {
	t := s.text
	end := p
	for p < len(t) {
		if s.column(p) == 0 && (strings.HasPrefix(t[p:], "---") || strings.HasPrefix(t[p:], "...")) && s.isBlankZ(p+3) {
			break
		}
		if t[p] == '#' {
			break
		}
		for !s.isBlankZ(p) {
			if t[p] == ':' && s.isBlankZ(p+1) || flow && strings.IndexByte(",?[]{}", t[p]) >= 0 {
				break
			}
			_, w := utf8.DecodeRuneInString(t[p:])
			p += w
			end = p
		}
		if !s.isBlank(p) && breakWidth(t, p) == 0 {
			break
		}
		for s.isBlank(p) || breakWidth(t, p) > 0 {
			p += max(breakWidth(t, p), 1)
		}
		if !flow && s.column(p) < indent+1 {
			break
		}
	}
	return end
}

// blockScalarEnd mirrors yaml_parser_scan_block_scalar: the end of the last content line.
func (s *source) blockScalarEnd(p, indent int) int {
	t := s.text
	p++ // the | or >
	increment := 0
	for ; p < len(t) && strings.IndexByte("+-123456789", t[p]) >= 0; p++ {
		if t[p] != '+' && t[p] != '-' {
			increment = int(t[p] - '0')
		}
	}
	end := p
	for !s.isBreakZ(p) { // blanks and a comment
		p++
	}
	p += breakWidth(t, p)
	content := 0
	if increment > 0 {
		content = max(indent, 0) + increment
	}
	p, col := s.blockScalarBreaks(p, &content, indent)
	for col == content && p < len(t) {
		for !s.isBreakZ(p) {
			p++
		}
		end = p
		p += breakWidth(t, p)
		p, col = s.blockScalarBreaks(p, &content, indent)
	}
	return end
}

// blockScalarBreaks mirrors yaml_parser_scan_block_scalar_breaks from the start of a line: it
// skips indentation and empty lines, fixes the content indentation if still unknown, and
// returns the position and column reached.
func (s *source) blockScalarBreaks(p int, content *int, indent int) (int, int) {
	t := s.text
	col, widest := 0, 0
	for {
		for p < len(t) && t[p] == ' ' && (*content == 0 || col < *content) {
			p++
			col++
		}
		widest = max(widest, col)
		w := breakWidth(t, p)
		if w == 0 {
			break
		}
		p += w
		col = 0
	}
	if *content == 0 {
		*content = max(widest, indent+1, 1)
	}
	return p, col
}
