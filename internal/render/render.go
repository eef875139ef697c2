// Package render secures ECK operators in a stream of Kubernetes manifests, offline: the
// `inject` and `diff` commands. It runs the same policy and mutation as the webhook and
// adds the companion objects the controller would create.
package render

import (
	"bytes"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/engine"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/meta"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// Options choose what Inject adds.
type Options struct {
	// Defaults are the settings used where an operator's annotations say nothing.
	Defaults policy.Defaults
	// Namespace is assumed for objects that do not name one.
	Namespace string
	// ServiceMonitor adds a Prometheus Operator ServiceMonitor for each secured operator.
	ServiceMonitor bool
	// Certificate tunes the cert-manager Certificate added when an issuer is chosen.
	Certificate mutate.CertificateOptions
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
	if opts.Certificate == (mutate.CertificateOptions{}) {
		opts.Certificate = mutate.DefaultCertificateOptions
	}
	s, err := parseStream(file, input, opts.Namespace)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	var companions []object
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

// object is what a companion is: a typed API object with metadata.
type object interface {
	runtime.Object
	metav1.Object
}

// secure secures one operator of the stream. It returns the companions to add, a note of
// what it did, and, when the operator it opted in stays unsecured, the verdict saying why.
func (s *stream) secure(w *document, op *eck.Operator, opts Options) ([]object, string, string, error) {
	name := fmt.Sprintf("%s %s/%s", op.Kind, op.Namespace, op.Name)
	cm := s.configMap(op.Namespace, op.ConfigMapName)
	in := policy.Input{
		NamespaceAnnotations: map[string]string{meta.AnnotationSecure: "true"},
		Operator:             op,
		Template:             w.template(),
		WorkloadAnnotations:  w.meta.Annotations,
		Defaults:             opts.Defaults,
		ConfigMaps:           map[string]*corev1.ConfigMap{},
	}
	if cm != nil {
		in.ConfigMap = cm.obj.(*corev1.ConfigMap)
	}
	for _, ref := range eck.ConfigMapRefs(in.Template, op.ContainerIndex) {
		in.ConfigMaps[ref] = nil
		if d := s.configMap(op.Namespace, ref); d != nil {
			in.ConfigMaps[ref] = d.obj.(*corev1.ConfigMap)
		}
	}
	res, ferr := engine.Secure(in)
	d := res.Decision
	if ferr != nil {
		return nil, "", "", s.errorAt(cm, ferr)
	}
	if len(d.Errs) > 0 {
		return nil, "", "", s.errorAt(s.holderOf(w, cm, d.Errs), d.Errs.ToAggregate())
	}
	if d.Plan == nil {
		unsecured := ""
		if d.Guarded { // an opt-out is the user's choice, not a failure to secure
			unsecured = engine.Judge(in).String()
		}
		return nil, name + ": " + d.Skip, unsecured, nil
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

	var added []object
	var service *corev1.Service
	if doc := s.metricsService(op, plan); doc != nil {
		service = doc.obj.(*corev1.Service)
		svcBefore := service.DeepCopy()
		if mutate.Service(service, op) {
			if err := doc.patchFrom(svcBefore); err != nil {
				return nil, "", "", s.errorAt(doc, err)
			}
		}
	} else {
		service = mutate.MetricsService(op, plan)
		added = append(added, service)
	}
	if !s.delegatesAuth(op) {
		added = append(added, mutate.AuthDelegatorBinding(op))
	}
	if c := mutate.Certificate(op, plan, service.Name, opts.Certificate); c != nil {
		added = append(added, c)
	}
	if opts.ServiceMonitor && !s.monitors(op.Namespace, service) {
		if sm := mutate.ServiceMonitor(op, plan, service); sm != nil {
			added = append(added, sm)
		}
	}
	added = s.missing(added)

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

// metricsService is the input's Service that exposes op's metrics, if any.
func (s *stream) metricsService(op *eck.Operator, plan *policy.Plan) *document {
	for _, d := range s.docs {
		if svc, ok := d.obj.(*corev1.Service); ok && mutate.IsMetricsService(svc, op, plan) {
			return d
		}
	}
	return nil
}

// delegatesAuth reports whether the input already lets the operator's ServiceAccount create
// TokenReviews and SubjectAccessReviews, as ECK's Helm chart does in secure mode.
func (s *stream) delegatesAuth(op *eck.Operator) bool {
	for _, d := range s.docs {
		if d.typeMeta.Kind != "ClusterRoleBinding" {
			continue
		}
		var crb rbacv1.ClusterRoleBinding
		if !d.decodeOnce(&crb) || crb.RoleRef.Kind != "ClusterRole" {
			continue
		}
		if !slices.ContainsFunc(crb.Subjects, func(sub rbacv1.Subject) bool {
			return sub.Kind == rbacv1.ServiceAccountKind && sub.Name == op.ServiceAccount && sub.Namespace == op.Namespace
		}) {
			continue
		}
		if crb.RoleRef.Name == mutate.AuthDelegatorRole {
			return true
		}
		if role := s.find("ClusterRole", "", crb.RoleRef.Name); role != nil {
			var cr rbacv1.ClusterRole
			if role.decodeOnce(&cr) && mutate.GrantsAuthDelegation(cr.Rules) {
				return true
			}
		}
	}
	return false
}

// monitors reports whether the input has a ServiceMonitor for svc already.
func (s *stream) monitors(namespace string, svc *corev1.Service) bool {
	for _, d := range s.docs {
		if d.typeMeta.Kind != "ServiceMonitor" || d.meta.Namespace != namespace {
			continue
		}
		var sm serviceMonitor
		if !d.decodeOnce(&sm) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(svc.Labels)) {
			return true
		}
	}
	return false
}

// serviceMonitor is what monitors reads of a ServiceMonitor.
type serviceMonitor struct {
	Spec struct {
		Selector metav1.LabelSelector `json:"selector"`
	} `json:"spec"`
}

// missing drops companions the input already has (a second inject adds nothing).
func (s *stream) missing(objs []object) []object {
	var out []object
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

func (s *stream) encode(companions []object) ([]byte, error) {
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
func manifest(obj object) ([]byte, error) {
	u, err := mutate.Unstructured(obj)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(u)
}
