package patch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// Template returns the operations that turn the pod template before into after, at path at
// of the document they belong to ("/spec/template" for a StatefulSet or a Deployment): the
// same result as Diff of the two documents, without encoding and re-parsing them whole.
//
// It compares the typed values where package mutate writes (the template's annotations and
// labels, the volumes, and each container's args, command, env, ports and volume mounts)
// field by field, and turns only a list element or object that differs into JSON to diff
// (as Diff does, so that a field the Go types do not know is never touched). Whatever else
// differs is diffed the way Diff does it, from the smallest enclosing object: a change
// elsewhere costs time, never correctness. Like Diff, it refuses a removal.
func Template(at string, before, after *corev1.PodTemplateSpec) ([]jsonpatch.Operation, error) {
	d := &differ{}
	d.template(at, before, after)
	return d.result()
}

// ConfigMap is Template for a ConfigMap: labels, annotations, data and binaryData by key.
func ConfigMap(before, after *corev1.ConfigMap) ([]jsonpatch.Operation, error) {
	d := &differ{}
	a, b := *before, *after
	a.Data, b.Data, a.BinaryData, b.BinaryData = nil, nil, nil, nil
	if !d.meta("", &a.ObjectMeta, &b.ObjectMeta) || !reflect.DeepEqual(a, b) {
		d.ops = nil
		d.full("", before, after)
		return d.result()
	}
	stringMap(d, "/data", before.Data, after.Data)
	bytesMap(d, "/binaryData", before.BinaryData, after.BinaryData)
	return d.result()
}

// Service is Template for a Service: its labels and annotations by key.
func Service(before, after *corev1.Service) ([]jsonpatch.Operation, error) {
	d := &differ{}
	a, b := *before, *after
	if !d.meta("", &a.ObjectMeta, &b.ObjectMeta) || !reflect.DeepEqual(a, b) {
		d.ops = nil
		d.full("", before, after)
	}
	return d.result()
}

type differ struct {
	ops []jsonpatch.Operation
	err error
}

func (d *differ) result() ([]jsonpatch.Operation, error) {
	if d.err != nil {
		return nil, d.err
	}
	return finish(d.ops)
}

// finish sorts the operations and refuses a removal, as Diff does.
func finish(ops []jsonpatch.Operation) ([]jsonpatch.Operation, error) {
	sortOperations(ops)
	for _, op := range ops {
		if op.Operation == "remove" {
			// The mutation only adds and sets: a removal is a bug, never sent to a cluster.
			return nil, fmt.Errorf("refusing a patch that removes %s", op.Path)
		}
	}
	return ops, nil
}

// add records an operation. Its value is the typed one: it encodes to the JSON Diff's
// would (keys in another order).
func (d *differ) add(op, path string, v any) {
	d.ops = append(d.ops, jsonpatch.NewOperation(op, path, v))
}

func (d *differ) fail(err error) {
	if d.err == nil {
		d.err = fmt.Errorf("failed to compute the patch: %w", err)
	}
}

// removed records a removal, which result refuses.
func (d *differ) removed(path string) {
	d.ops = append(d.ops, jsonpatch.NewOperation("remove", path, nil))
}

// full diffs two values that exist at path in both documents, as Diff does.
func (d *differ) full(path string, a, b any) {
	x, err := json.Marshal(a)
	if err != nil {
		d.fail(err)
		return
	}
	y, err := json.Marshal(b)
	if err != nil {
		d.fail(err)
		return
	}
	ops, err := jsonpatch.CreatePatch(x, y)
	if err != nil {
		d.fail(err)
		return
	}
	for _, op := range ops {
		op.Path = path + op.Path
		d.ops = append(d.ops, op)
	}
}

// meta diffs the labels and annotations of two ObjectMetas at path (the object's; its
// metadata is always encoded) and reports whether the rest of them is equal. It clears both
// maps of a and b, which must be copies.
func (d *differ) meta(path string, a, b metaFields) bool {
	al, bl := a.GetLabels(), b.GetLabels()
	aa, ba := a.GetAnnotations(), b.GetAnnotations()
	a.SetLabels(nil)
	b.SetLabels(nil)
	a.SetAnnotations(nil)
	b.SetAnnotations(nil)
	if !reflect.DeepEqual(a, b) {
		return false
	}
	stringMap(d, path+"/metadata/labels", al, bl)
	stringMap(d, path+"/metadata/annotations", aa, ba)
	return true
}

type metaFields interface {
	GetLabels() map[string]string
	SetLabels(map[string]string)
	GetAnnotations() map[string]string
	SetAnnotations(map[string]string)
}

func (d *differ) template(at string, before, after *corev1.PodTemplateSpec) {
	if before == after {
		return
	}
	fallback := func() {
		d.ops = nil
		d.full(at, before, after)
	}
	am, bm := before.ObjectMeta, after.ObjectMeta
	if !d.meta(at, &am, &bm) {
		fallback()
		return
	}
	as, bs := before.Spec, after.Spec
	as.Containers, bs.Containers, as.Volumes, bs.Volumes = nil, nil, nil, nil
	if !reflect.DeepEqual(as, bs) || len(before.Spec.Containers) != len(after.Spec.Containers) {
		fallback()
		return
	}
	spec := at + "/spec"
	list(d, spec+"/volumes", before.Spec.Volumes, after.Spec.Volumes, deepEqual[corev1.Volume])
	for i := range before.Spec.Containers {
		d.container(spec+"/containers/"+strconv.Itoa(i), &before.Spec.Containers[i], &after.Spec.Containers[i])
	}
}

func (d *differ) container(path string, a, b *corev1.Container) {
	x, y := *a, *b
	x.Args, y.Args, x.Command, y.Command, x.Env, y.Env = nil, nil, nil, nil, nil, nil
	x.Ports, y.Ports, x.VolumeMounts, y.VolumeMounts = nil, nil, nil, nil
	if !reflect.DeepEqual(x, y) {
		d.full(path, a, b)
		return
	}
	list(d, path+"/args", a.Args, b.Args, equal[string])
	list(d, path+"/command", a.Command, b.Command, equal[string])
	list(d, path+"/env", a.Env, b.Env, sameEnv)
	list(d, path+"/ports", a.Ports, b.Ports, equal[corev1.ContainerPort])
	list(d, path+"/volumeMounts", a.VolumeMounts, b.VolumeMounts, deepEqual[corev1.VolumeMount])
}

func equal[T comparable](a, b *T) bool { return *a == *b }

func deepEqual[T any](a, b *T) bool { return reflect.DeepEqual(a, b) }

func sameEnv(a, b *corev1.EnvVar) bool {
	return a.Name == b.Name && a.Value == b.Value && (a.ValueFrom == b.ValueFrom || reflect.DeepEqual(a.ValueFrom, b.ValueFrom))
}

// list diffs a list encoded with omitempty, as Diff does: a list grown from nothing is
// added whole, new elements are added at their index, and an element that differs is diffed
// field by field.
func list[T any](d *differ, path string, a, b []T, same func(x, y *T) bool) {
	switch {
	case len(a) == 0 && len(b) == 0:
		return
	case len(a) == 0:
		d.add("add", path, b)
		return
	case len(b) == 0:
		d.removed(path)
		return
	}
	for i := len(b); i < len(a); i++ {
		d.removed(path + "/" + strconv.Itoa(i))
	}
	for i := range min(len(a), len(b)) {
		if !same(&a[i], &b[i]) {
			d.full(path+"/"+strconv.Itoa(i), &a[i], &b[i])
		}
	}
	for i := len(a); i < len(b); i++ {
		d.add("add", path+"/"+strconv.Itoa(i), b[i])
	}
}

// pointer escapes a map key as a JSON pointer token (RFC 6901).
var pointerToken = strings.NewReplacer("~", "~0", "/", "~1")

// stringMap diffs a map encoded with omitempty by key.
func stringMap(d *differ, path string, a, b map[string]string) {
	keyedMap(d, path, a, b, func(x, y string) bool { return x == y })
}

// bytesMap is stringMap for binaryData (base64 in JSON; a nil value is null).
func bytesMap(d *differ, path string, a, b map[string][]byte) {
	keyedMap(d, path, a, b, func(x, y []byte) bool { return bytes.Equal(x, y) && (x == nil) == (y == nil) })
}

// keyedMap diffs a map encoded with omitempty key by key, values compared with equal.
func keyedMap[V any](d *differ, path string, a, b map[string]V, equal func(x, y V) bool) {
	switch {
	case len(a) == 0 && len(b) == 0:
		return
	case len(a) == 0:
		d.add("add", path, b)
		return
	case len(b) == 0:
		d.removed(path)
		return
	}
	for k, v := range b {
		old, ok := a[k]
		switch {
		case !ok:
			d.add("add", path+"/"+pointerToken.Replace(k), v)
		case !equal(old, v):
			d.add("replace", path+"/"+pointerToken.Replace(k), v)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			d.removed(path + "/" + pointerToken.Replace(k))
		}
	}
}
