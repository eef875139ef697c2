// Package render secures ECK operators in a stream of Kubernetes manifests, offline: the
// `inject` and `diff` commands. It runs the same policy and mutation as the webhook and
// adds the companion objects the controller would create.
package render

import (
	"bytes"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/engine"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// Options choose what Inject adds.
type Options struct {
	// Defaults are the settings used where an operator's annotations say nothing, the
	// Certificate's validity and the monitor included.
	Defaults policy.Defaults
	// Namespace is assumed for objects that do not name one.
	Namespace string
	// Policies, if any, replace the command's own opt-in: the stream's operators are
	// governed as in a cluster with these MetricsSecurityPolicies (matched against the
	// stream's Namespace objects) and the annotations of those Namespaces. Audit changes
	// nothing and reports; Mutate and Enforce secure; under Enforce an opt-out, or an
	// operator left open or unknown, is an error.
	Policies []v1alpha1.MetricsSecurityPolicy
}

// Result is the secured stream and what was done to each operator.
type Result struct {
	Output []byte
	Notes  []string
	// Unsecured lists the operators the stream still leaves without secured metrics (opted
	// out, unsupported, unknown to the guard), each with the verdict: a GitOps check fails on it.
	Unsecured []string
}

// Error locates a problem in the input: the file, the document and the object.
type Error struct {
	File   string
	Index  int // 0-based document index
	Object string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: document %d (%s): %v", e.File, e.Index, e.Object, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Inject secures every ECK operator found in the manifests read from file (a name for
// messages) and returns the whole stream: untouched documents byte for byte, in order,
// then the companion objects. Operators annotated metrics-guard.eck.dev/secure: "false"
// are left alone; the command itself is the opt-in.
func Inject(file string, input []byte, opts Options) (*Result, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	s, err := parseStream(file, input, opts.Namespace)
	if err != nil {
		return nil, err
	}
	s.policies = opts.Policies
	res := &Result{}
	var companions []engine.Object
	for _, w := range s.workloads() {
		op, ok := w.operator()
		if !ok {
			continue
		}
		added, note, unsecured, err := s.secure(w, op, opts)
		if err != nil {
			return nil, err
		}
		res.Notes = append(res.Notes, note)
		if unsecured != "" {
			res.Unsecured = append(res.Unsecured, fmt.Sprintf("%s %s/%s: %s", op.Kind, op.Namespace, op.Name, unsecured))
		}
		companions = append(companions, added...)
	}
	out, err := s.encode(companions)
	if err != nil {
		return nil, err
	}
	res.Output = out
	return res, nil
}

// secure secures one operator of the stream. It returns the companions to add, a note of
// what it did, and, when the operator it opted in stays unsecured, the verdict saying why.
func (s *stream) secure(w *document, op *eck.Operator, opts Options) ([]engine.Object, string, string, error) {
	name := fmt.Sprintf("%s %s/%s", op.Kind, op.Namespace, op.Name)
	in, err := cluster.Input(context.Background(), s, op.Namespace, cluster.Workload{Operator: op, Template: w.template(), Annotations: w.meta.Annotations}, opts.Defaults)
	if err != nil {
		return nil, "", "", s.errorAt(w, err)
	}
	cm := s.configMap(op.Namespace, op.ConfigMapName)
	// Under an Enforce policy the stream is judged as a create: what it leaves open or
	// unknown, or opts out, is denied.
	res, ferr := engine.Admit(in, nil)
	d := res.Decision
	if ferr != nil {
		return nil, "", "", s.errorAt(cm, ferr)
	}
	if len(d.Errs) > 0 {
		return nil, "", "", s.errorAt(s.holderOf(w, cm, d.Errs), d.Errs.ToAggregate())
	}
	if len(d.Denied) > 0 {
		return nil, "", "", s.errorAt(s.holderOf(w, cm, d.Denied), d.Denied.ToAggregate())
	}
	if d.Plan == nil {
		// An opt-out is the user's choice, not a failure to secure; an operator a policy
		// covers (an Audit policy secures nothing) is reported by its verdict.
		unsecured := ""
		if v := engine.Judge(in); !v.Secured() && (d.Guarded || in.Coverage != nil) {
			unsecured = v.String()
		}
		note := name + ": " + d.Skip
		for _, wng := range d.Warnings {
			note += "\n  warning: " + wng
		}
		return nil, note, unsecured, nil
	}
	plan := d.Plan

	if res.TemplateChanged {
		before := w.obj.DeepCopyObject()
		*w.template() = *res.Template
		if err := w.patchFrom(before); err != nil {
			return nil, "", "", s.errorAt(w, err)
		}
	}
	if !plan.Flags && cm == nil {
		return nil, "", "", s.errorAt(w, fmt.Errorf("ConfigMap %s/%s with eck.yaml is not in the input: secure the whole install at once", op.Namespace, op.ConfigMapName))
	}
	if res.ConfigMapChanged {
		cmBefore := cm.obj.DeepCopyObject()
		*cm.obj.(*corev1.ConfigMap) = *res.ConfigMap
		if err := cm.patchFrom(cmBefore); err != nil {
			return nil, "", "", s.errorAt(cm, err)
		}
	}

	// The command is the opt-in of whoever may apply the stream: every companion is made.
	c := res.Companions(s.existing(op.Namespace))
	if c.Labelled {
		doc := s.find("Service", c.Service.Namespace, c.Service.Name)
		before := doc.obj.DeepCopyObject()
		*doc.obj.(*corev1.Service) = *c.Service
		if err := doc.patchFrom(before); err != nil {
			return nil, "", "", s.errorAt(doc, err)
		}
	}
	added := s.missing(c.New())

	note := fmt.Sprintf("%s: metrics on port %d over TLS with token authentication", name, plan.Port)
	if !res.Verdict.Secured() {
		note = fmt.Sprintf("%s: not secured: %s", name, res.Verdict)
	}
	switch {
	case plan.Issuer != nil:
		note += fmt.Sprintf(", certificate from %s %s into Secret %s", plan.Issuer.Kind, plan.Issuer.Name, plan.SecretName)
	case plan.SecretName != "":
		note += ", certificate from Secret " + plan.SecretName
	}
	for _, wng := range d.Warnings {
		note += "\n  warning: " + wng
	}
	unsecured := ""
	if !res.Verdict.Secured() {
		unsecured = res.Verdict.String()
	}
	return added, note, unsecured, nil
}

// holderOf is the document that holds the first invalid setting: the ConfigMap for its
// data (eck.yaml), else the workload.
func (s *stream) holderOf(w, cm *document, errs field.ErrorList) *document {
	if cm != nil && len(policy.OwnErrors(errs, cm.meta.Annotations, policy.HolderConfigMap)) > 0 && len(policy.OwnErrors(errs, w.meta.Annotations, policy.HolderWorkload)) == 0 {
		return cm
	}
	return w
}

// configMap is the input's ConfigMap of that name, decoded (a document of kind ConfigMap
// that is not a core/v1 one is not).
func (s *stream) configMap(namespace, name string) *document {
	d := s.find("ConfigMap", namespace, name)
	if d == nil {
		return nil
	}
	if _, ok := d.obj.(*corev1.ConfigMap); !ok {
		return nil
	}
	return d
}

// existing is what the stream holds around an operator in namespace, for its companions.
func (s *stream) existing(namespace string) engine.Existing {
	have := engine.Existing{ClusterRoles: map[string]*rbacv1.ClusterRole{}}
	for _, d := range s.docs {
		switch d.typeMeta.Kind {
		case "Service":
			if svc, ok := d.obj.(*corev1.Service); ok && svc.Namespace == namespace {
				have.Services = append(have.Services, svc)
			}
		case "ClusterRoleBinding":
			crb := &rbacv1.ClusterRoleBinding{}
			if d.decodeOnce(crb) {
				have.Bindings = append(have.Bindings, crb)
			}
		case "ClusterRole":
			cr := &rbacv1.ClusterRole{}
			if d.decodeOnce(cr) {
				have.ClusterRoles[d.meta.Name] = cr
			}
		case policy.ServiceMonitorKind, policy.PodMonitorKind:
			var m monitor
			if d.meta.Namespace != namespace || d.meta.Labels[keys.LabelManagedBy] == keys.ManagedByValue || !d.decodeOnce(&m) {
				continue
			}
			if d.typeMeta.Kind == policy.PodMonitorKind {
				have.PodMonitors = append(have.PodMonitors, m.Spec.Selector)
			} else {
				have.ServiceMonitors = append(have.ServiceMonitors, m.Spec.Selector)
			}
		}
	}
	return have
}

// monitor is what existing reads of a ServiceMonitor or PodMonitor.
type monitor struct {
	Spec struct {
		Selector metav1.LabelSelector `json:"selector"`
	} `json:"spec"`
}

// The stream is the cluster.Lookup of inject: the command is the opt-in of every namespace.
var _ cluster.Lookup = (*stream)(nil)

// Namespace implements cluster.Lookup: without policies, every namespace is opted in; with
// them, a namespace is what its Namespace object in the stream says (none: no annotations,
// no labels), and the policies cover it as they would in a cluster.
func (s *stream) Namespace(_ context.Context, name string) (cluster.Namespace, error) {
	if s.policies == nil {
		return cluster.Namespace{Annotations: map[string]string{keys.AnnotationSecure: "true"}}, nil
	}
	var n cluster.Namespace
	var labels map[string]string
	if d := s.find("Namespace", "", name); d != nil {
		n.Annotations, labels = d.meta.Annotations, d.meta.Labels
	}
	n.Coverage = (*policy.Selectors)(nil).Cover(s.policies, name, labels)
	return n, nil
}

// ConfigMap implements cluster.Lookup.
func (s *stream) ConfigMap(_ context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	if d := s.configMap(namespace, name); d != nil {
		return d.obj.(*corev1.ConfigMap), nil
	}
	return nil, nil
}

// Operators implements cluster.Lookup.
func (s *stream) Operators(_ context.Context, namespace string) ([]cluster.Workload, error) {
	var out []cluster.Workload
	for _, w := range s.workloads() {
		if op, ok := w.operator(); ok && op.Namespace == namespace {
			out = append(out, cluster.Workload{Operator: op, Template: w.template(), Annotations: w.meta.Annotations})
		}
	}
	return out, nil
}

// missing drops companions the input already has (a second inject adds nothing).
func (s *stream) missing(objs []engine.Object) []engine.Object {
	var out []engine.Object
	for _, o := range objs {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		if s.find(kind, o.GetNamespace(), o.GetName()) == nil {
			out = append(out, o)
		}
	}
	return out
}

func (s *stream) errorAt(d *document, err error) error {
	return &Error{File: s.file, Index: d.index, Object: d.describe(), Err: err}
}

func (s *stream) encode(companions []engine.Object) ([]byte, error) {
	var buf bytes.Buffer
	for _, d := range s.docs {
		b, err := d.bytes()
		if err != nil {
			return nil, s.errorAt(d, err)
		}
		buf.Write(b)
	}
	for _, c := range companions {
		b, err := manifest(c)
		if err != nil {
			return nil, fmt.Errorf("failed to encode %T: %w", c, err)
		}
		if buf.Len() > 0 && !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
			buf.WriteByte('\n')
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// manifest encodes a new object as YAML.
func manifest(obj engine.Object) ([]byte, error) {
	u, err := mutate.Unstructured(obj)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(u)
}
