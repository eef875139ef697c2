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
	slices.SortStableFunc(ops, func(a, b jsonpatch.Operation) int {
		x, y := strings.Split(a.Path, "/"), strings.Split(b.Path, "/")
		for i := 0; i < len(x) && i < len(y); i++ {
			if x[i] == y[i] {
				continue
			}
			m, errM := strconv.Atoi(x[i])
			n, errN := strconv.Atoi(y[i])
			if errM == nil && errN == nil {
				return cmp.Compare(m, n)
			}
			return strings.Compare(x[i], y[i])
		}
		return cmp.Compare(len(x), len(y))
	})
}

// Marshal encodes operations as a JSON patch document.
func Marshal(ops []jsonpatch.Operation) ([]byte, error) {
	return json.Marshal(ops)
}
