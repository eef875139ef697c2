package eck

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Word is one word of a container's command line, after the kubelet's $(VAR) expansion.
type Word struct {
	// Field is "command" or "args", Index the position in it; Index -1 is the image's
	// entrypoint, which the container does not spell out.
	Field string
	Index int
	Text  string
	// Raw is the word as written, before expansion.
	Raw string
	// Unknown says why the expanded text cannot be known (a variable the guard cannot read).
	Unknown string
}

func (w Word) String() string {
	if w.Index < 0 {
		return "the image's entrypoint"
	}
	return fmt.Sprintf("%s[%d]", w.Field, w.Index)
}

// FlagUse is one occurrence of a flag on the command line.
type FlagUse struct {
	Name string
	// Value is the flag's text as pflag reads it; ValueUnknown says why it cannot be known.
	Value        string
	ValueUnknown string
	// NameWord holds the flag; ValueWord its value, the same word for --name=value and for a
	// boolean given alone.
	NameWord, ValueWord int
}

// CommandLine is a container's command line as ECK's cobra and pflag parse it.
type CommandLine struct {
	Words []Word
	// Flags in order; for each name the last occurrence wins.
	Flags []FlagUse
	// Terminator is the index of "--" in Words, after which nothing is a flag; -1 if none.
	Terminator int
	// NotManager says why this command line does not run ECK's manager (another program, or
	// another subcommand): then no metrics are served.
	NotManager string
	// Unknown says why the guard cannot tell what the command line does.
	Unknown string
}

// Last returns the last use of a flag.
func (c *CommandLine) Last(name string) (FlagUse, bool) {
	for i := len(c.Flags) - 1; i >= 0; i-- {
		if c.Flags[i].Name == name {
			return c.Flags[i], true
		}
	}
	return FlagUse{}, false
}

// parseCommandLine reads words as the image's entrypoint /elastic-operator (cobra, with the
// manager subcommand, and pflag) would. words[0] is the program.
func parseCommandLine(words []Word) *CommandLine {
	c := &CommandLine{Words: words, Terminator: -1}
	if len(words) == 0 {
		c.NotManager = "the container has no command"
		return c
	}
	if w := words[0]; w.Unknown != "" {
		c.Unknown = fmt.Sprintf("%s: %s", w, w.Unknown)
		return c
	} else if path.Clean(w.Text) != Entrypoint {
		// A shell or any other launcher can start ECK with settings of its own: only ECK's
		// own command line can be read.
		c.Unknown = fmt.Sprintf("the container runs %q, not ECK's %s, and the guard cannot tell what that starts", w.Text, Entrypoint)
		return c
	}
	subcommand := false
	for i := 1; i < len(words); i++ {
		w := words[i]
		if c.Terminator >= 0 {
			continue // positional
		}
		if w.Unknown != "" {
			// --name=$(VAR): the flag is known, only its value is not.
			name, _, inline := strings.Cut(strings.TrimPrefix(w.Raw, "--"), "=")
			if _, known := managerFlags[name]; !known || !inline || !strings.HasPrefix(w.Raw, "--") || strings.Contains(name, "$") || !subcommand {
				c.Unknown = fmt.Sprintf("%s: %s", w, w.Unknown)
				return c
			}
			c.Flags = append(c.Flags, FlagUse{Name: name, ValueUnknown: w.Unknown, NameWord: i, ValueWord: i})
			continue
		}
		switch {
		case w.Text == "--":
			c.Terminator = i
		case strings.HasPrefix(w.Text, "--"):
			name, value, inline := strings.Cut(w.Text[2:], "=")
			use := FlagUse{Name: name, Value: value, NameWord: i, ValueWord: i}
			if !subcommand {
				c.Unknown = fmt.Sprintf("%s: flag %s before the manager subcommand, which cobra resolves in ways the guard does not model", w, w.Text)
				return c
			}
			if name == "help" {
				c.NotManager = fmt.Sprintf("%s: --help prints ECK's help and exits", w)
				return c
			}
			boolean, known := managerFlags[name]
			if !known || name == "" {
				c.Unknown = fmt.Sprintf("%s: %q is not a flag of ECK's manager, which then exits", w, w.Text)
				return c
			}
			switch {
			case boolean && !inline:
				use.Value = "true"
			case boolean:
				if _, err := strconv.ParseBool(value); err != nil {
					c.Unknown = fmt.Sprintf("%s: %q is not a boolean, and ECK exits", w, w.Text)
					return c
				}
			case !inline:
				if i+1 >= len(words) {
					c.Unknown = fmt.Sprintf("%s: flag --%s needs a value, and ECK exits", w, name)
					return c
				}
				i++
				use.ValueWord, use.Value, use.ValueUnknown = i, words[i].Text, words[i].Unknown
			}
			if s, ok := settingOf(name); ok && s.Type == Int && use.ValueUnknown == "" {
				if _, err := strconv.ParseInt(use.Value, 0, 64); err != nil {
					c.Unknown = fmt.Sprintf("%s: --%s %q is not an integer, and ECK exits", words[use.ValueWord], name, use.Value)
					return c
				}
			}
			c.Flags = append(c.Flags, use)
		case strings.HasPrefix(w.Text, "-") && len(w.Text) > 1:
			if w.Text == "-h" {
				c.NotManager = fmt.Sprintf("%s: -h prints ECK's help and exits", w)
			} else {
				c.Unknown = fmt.Sprintf("%s: %q is not a flag of ECK's manager, which then exits", w, w.Text)
			}
			return c
		case !subcommand:
			if w.Text != "manager" {
				c.NotManager = fmt.Sprintf("%s: the subcommand is %q, not manager", w, w.Text)
				return c
			}
			subcommand = true
		}
	}
	if !subcommand {
		c.NotManager = "the command line has no manager subcommand"
	}
	return c
}

// expand is the kubelet's $(VAR) expansion: "$$" is "$"; a reference to a variable the
// container does not define is unknown (the kubelet may define it). lookup returns a
// variable's value, whether it is defined, and why it cannot be known.
func expand(s string, lookup func(string) (string, bool, string)) (string, string) {
	if !strings.Contains(s, "$") {
		return s, ""
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			value, defined, unknown := lookup(name)
			switch {
			case unknown != "":
				return "", fmt.Sprintf("$(%s): %s", name, unknown)
			case !defined:
				// The kubelet leaves an undefined reference as written, but it defines more
				// than the container's env: the service links of the namespace's Services
				// (KUBERNETES_SERVICE_PORT always), which the guard does not see.
				return "", fmt.Sprintf("$(%s) is not defined by the container's env, and the kubelet may define it (service links)", name)
			}
			b.WriteString(value)
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), ""
}
