package eckconfig

import (
	"strconv"
	"strings"
	"sync"
)

// The webhook decides about the same few eck.yaml files on every request (the operators'
// ConfigMaps, as the cache holds them, and as the guard secures them): Parse and Apply keep
// their results for recent texts, so that a request does not parse them again with yaml.v3
// (about 8 % of an admission's CPU before). Both are pure functions of their arguments, and
// a Config is read-only, so a result can be shared. The memo is bounded in bytes of text:
// a file larger than memoMaxText is never kept, and when the memo would hold more than
// memoBudget bytes it forgets entries at random until it fits.
const (
	memoMaxText = 64 << 10
	memoBudget  = 512 << 10
)

type memo[V any] struct {
	mu    sync.Mutex
	m     map[string]sized[V]
	bytes int
}

type sized[V any] struct {
	v    V
	size int
}

func (c *memo[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return e.v, ok
}

// put keeps v for key; size is what it costs (the key's length and the result's).
func (c *memo[V]) put(key string, v V, size int) {
	if size > memoMaxText {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]sized[V]{}
	}
	if _, ok := c.m[key]; ok {
		return
	}
	for k, e := range c.m { // map order: at random
		if c.bytes+size <= memoBudget {
			break
		}
		c.bytes -= e.size
		delete(c.m, k)
	}
	c.m[key] = sized[V]{v, size}
	c.bytes += size
}

type parsed struct {
	cfg *Config
	err error
}

var parses memo[parsed]

// parseMemo is Parse through the memo.
func parseMemo(text string) (*Config, error) {
	if p, ok := parses.get(text); ok {
		return p.cfg, p.err
	}
	d, err := parse(text)
	p := parsed{err: err}
	if err == nil {
		p.cfg = &d.Config
	}
	parses.put(text, p, len(text))
	return p.cfg, p.err
}

type applied struct {
	text    string
	changed bool
	err     error
}

var applies memo[applied]

// applyKey is the memo's key for Apply's arguments.
func applyKey(text string, changes []Change) string {
	var b strings.Builder
	b.Grow(len(text) + 32*len(changes))
	for _, c := range changes {
		b.WriteString(c.Key)
		b.WriteByte(0)
		b.WriteString(c.Value)
		b.WriteByte(0)
		b.WriteString(strconv.FormatBool(c.IfAbsent))
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(int(c.Type)))
		b.WriteByte(0)
	}
	b.WriteByte(1)
	b.WriteString(text)
	return b.String()
}

// memoBytes is what the memos hold, for tests.
func memoBytes() (parse, apply int) {
	parses.mu.Lock()
	parse = parses.bytes
	parses.mu.Unlock()
	applies.mu.Lock()
	apply = applies.bytes
	applies.mu.Unlock()
	return parse, apply
}
