// Package patch turns a typed mutation into JSON patch operations and applies them to a
// YAML document without disturbing what the mutation did not touch.
//
// Diff compares the object before and after the mutation, both encoded from the same Go
// types, so the operations say exactly what the mutation did: fields the types do not
// know, and defaults the encoding adds, appear on neither side and are never removed.
// The webhook answers with these operations; the CLI applies them to the YAML it read.
package patch

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// Diff returns the operations that turn before into after.
func Diff(before, after any) ([]jsonpatch.Operation, error) {
	a, err := json.Marshal(before)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the original object: %w", err)
	}
	b, err := json.Marshal(after)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the mutated object: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("failed to compute the patch: %w", err)
	}
	sortOperations(ops)
	for _, op := range ops {
		if op.Operation == "remove" {
			// The mutation only adds and sets: a removal is a bug, never sent to a cluster.
			return nil, fmt.Errorf("refusing a patch that removes %s", op.Path)
		}
	}
	return ops, nil
}

// sortOperations orders operations by path, token by token and list indexes by number,
// so that a patch is the same on every run and a parent comes before its children.
func sortOperations(ops []jsonpatch.Operation) {
	slices.SortStableFunc(ops, func(a, b jsonpatch.Operation) int { return comparePaths(a.Path, b.Path) })
}

// comparePaths compares two JSON pointers token by token, numbers as numbers, a prefix
// first (strings.Split's tokens, without the allocations).
func comparePaths(x, y string) int {
	for {
		a, restX, moreX := strings.Cut(x, "/")
		b, restY, moreY := strings.Cut(y, "/")
		if a != b {
			m, errM := strconv.Atoi(a)
			n, errN := strconv.Atoi(b)
			if errM == nil && errN == nil {
				return cmp.Compare(m, n)
			}
			return strings.Compare(a, b)
		}
		if !moreX || !moreY {
			return cmp.Compare(count(moreX), count(moreY))
		}
		x, y = restX, restY
	}
}

func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Marshal encodes operations as a JSON patch document.
func Marshal(ops []jsonpatch.Operation) ([]byte, error) {
	return json.Marshal(ops)
}
