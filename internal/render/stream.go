package render

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	goyaml "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/patch"
)

// stream is a multi-document YAML input, split so that every document can be written
// back exactly as read unless it was changed.
type stream struct {
	file     string
	docs     []*document
	policies []v1alpha1.MetricsSecurityPolicy
}

// document is one YAML document. obj is set for the kinds the guard may change.
type document struct {
	index     int
	separator string // the "---" line before it, as written ("" for the first)
	raw       []byte
	node      *goyaml.Node // parsed on first change
	changed   bool

	typeMeta metav1.TypeMeta
	meta     metav1.ObjectMeta
	obj      runtime.Object
	// decoded holds what decodeOnce decoded, so that a stream of many operators reads each
	// of its ClusterRoles, bindings and ServiceMonitors once, not once per operator.
	decoded    any
	decodedErr error
}

// decodeOnce decodes the document into into (a pointer), the first time from its text and
// then from the copy kept; it reports false if the document does not decode.
func (d *document) decodeOnce(into any) bool {
	if d.decoded == nil && d.decodedErr == nil {
		d.decodedErr = yaml.Unmarshal(d.raw, into)
		if d.decodedErr == nil {
			d.decoded = reflect.ValueOf(into).Elem().Interface()
		}
		return d.decodedErr == nil
	}
	if d.decodedErr != nil {
		return false
	}
	v := reflect.ValueOf(into).Elem()
	kept := reflect.ValueOf(d.decoded)
	if kept.Type() != v.Type() {
		return yaml.Unmarshal(d.raw, into) == nil
	}
	v.Set(kept)
	return true
}

func parseStream(file string, input []byte, namespace string) (*stream, error) {
	s := &stream{file: file}
	for i, part := range split(input) {
		d := &document{index: i, separator: part.separator, raw: part.body}
		if err := d.decode(namespace); err != nil {
			return nil, &Error{File: file, Index: i, Object: "unparsable", Err: err}
		}
		s.docs = append(s.docs, d)
	}
	return s, nil
}

type part struct {
	separator string
	body      []byte
}

// split cuts a stream at its "---" lines, keeping each line as written.
func split(input []byte) []part {
	var parts []part
	cur := part{}
	for _, line := range bytes.SplitAfter(input, []byte("\n")) {
		t := strings.TrimRight(string(line), " \t\r\n")
		if t == "---" || strings.HasPrefix(t, "--- ") {
			parts = append(parts, cur)
			cur = part{separator: string(line)}
			continue
		}
		cur.body = append(cur.body, line...)
	}
	return append(parts, cur)
}

func (d *document) decode(namespace string) error {
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(d.raw, &head); err != nil {
		return err
	}
	d.typeMeta, d.meta = head.TypeMeta, head.Metadata
	if d.meta.Namespace == "" {
		d.meta.Namespace = namespace
	}
	var obj runtime.Object
	switch d.typeMeta.GroupVersionKind() {
	case appsv1.SchemeGroupVersion.WithKind("StatefulSet"):
		obj = &appsv1.StatefulSet{}
	case appsv1.SchemeGroupVersion.WithKind("Deployment"):
		obj = &appsv1.Deployment{}
	case corev1.SchemeGroupVersion.WithKind("ConfigMap"):
		obj = &corev1.ConfigMap{}
	case corev1.SchemeGroupVersion.WithKind("Service"):
		obj = &corev1.Service{}
	default:
		return nil
	}
	// A key written twice is one value to kubectl (the last) and another to a tree edit (the
	// first): refuse it rather than secure one copy and apply the other.
	var strict any
	if err := goyaml.Unmarshal(d.raw, &strict); err != nil {
		return fmt.Errorf("%s: %w", d.typeMeta.Kind, err)
	}
	if err := yaml.Unmarshal(d.raw, obj); err != nil {
		return fmt.Errorf("failed to decode %s: %w", d.typeMeta.Kind, err)
	}
	obj.(metav1.Object).SetNamespace(d.meta.Namespace)
	d.obj = obj
	return nil
}

func (d *document) describe() string {
	if d.typeMeta.Kind == "" {
		return "no kind"
	}
	if !clusterScoped[d.typeMeta.Kind] {
		return fmt.Sprintf("%s %s/%s", d.typeMeta.Kind, d.meta.Namespace, d.meta.Name)
	}
	return fmt.Sprintf("%s %s", d.typeMeta.Kind, d.meta.Name)
}

// clusterScoped are the cluster-scoped kinds the guard looks for in a stream.
var clusterScoped = map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "Namespace": true}

func (s *stream) workloads() []*document {
	var out []*document
	for _, d := range s.docs {
		switch d.obj.(type) {
		case *appsv1.StatefulSet, *appsv1.Deployment:
			out = append(out, d)
		}
	}
	return out
}

func (s *stream) find(kind, namespace, name string) *document {
	for _, d := range s.docs {
		if d.typeMeta.Kind == kind && d.meta.Name == name && (d.meta.Namespace == namespace || clusterScoped[kind]) {
			return d
		}
	}
	return nil
}

func (d *document) operator() (*eck.Operator, bool) {
	op, _, ok := eck.FromObject(d.obj)
	return op, ok
}

func (d *document) template() *corev1.PodTemplateSpec {
	_, tmpl, _ := eck.FromObject(d.obj)
	return tmpl
}

// patchFrom records a change to d.obj (made since before) in the document's YAML tree.
func (d *document) patchFrom(before runtime.Object) error {
	ops, err := patch.Diff(before, d.obj)
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		return nil
	}
	if d.node == nil {
		var n goyaml.Node
		if err := goyaml.Unmarshal(d.raw, &n); err != nil {
			return err
		}
		d.node = &n
	}
	d.changed = true
	return patch.ApplyYAML(d.node, ops)
}

func (d *document) bytes() ([]byte, error) {
	if !d.changed {
		return append([]byte(d.separator), d.raw...), nil
	}
	var buf bytes.Buffer
	buf.WriteString(d.separator)
	enc := goyaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if compactSequences(d.raw) {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(d.node); err != nil {
		return nil, fmt.Errorf("failed to encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if bytes.HasSuffix(d.raw, []byte("\n\n")) {
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// compactSequences reports whether a document writes list items at the indentation of
// their key ("key:\n- item", as kubectl and ECK's manifests do) rather than indented
// under it (as Helm charts often do), so a changed document keeps its look.
func compactSequences(raw []byte) bool {
	prevIndent, prevIsKey := -1, false
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(trimmed)
		if prevIsKey && strings.HasPrefix(trimmed, "- ") {
			return indent == prevIndent
		}
		prevIndent, prevIsKey = indent, strings.HasSuffix(strings.TrimRight(trimmed, " "), ":")
	}
	return true
}
