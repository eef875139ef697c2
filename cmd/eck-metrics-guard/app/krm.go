package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/kustomize/kyaml/fn/framework"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/render"
)

// KRMKind is the kind of the KRM function's own functionConfig (apiVersion
// metrics-guard.eck.dev/v1alpha1); a ConfigMap's data works too. It is never applied to a
// cluster: kustomize only hands it to the function.
const KRMKind = "MetricsGuard"

// krmOptions are the inject flags a functionConfig may set: a ConfigMap's data key is the
// flag's name (issuer-kind), a MetricsGuard's spec field its lowerCamelCase form
// (issuerKind). -f/--filename is the ResourceList itself.
var krmOptions = []string{
	"tls-secret", "issuer", "issuer-kind", "metrics-port", "cert-dir", "namespace",
	"monitor", "service-monitor", "monitor-labels", "monitor-annotations",
	"scrape-interval", "scrape-timeout", "scrape-token-secret", "scrape-token-key",
	"cert-duration", "cert-renew-before",
}

func newKRMCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "krm",
		Short: "Run as a KRM function (a kustomize exec transformer): secure the ECK operators of the ResourceList read on standard input",
		Long: `krm reads a KRM ResourceList on standard input, secures every ECK operator among its
items as inject does, and writes the ResourceList on standard output: the items it does
not change exactly as read (unknown fields and comments kept), the changed ones with
their comments, then the companion objects. functionConfig carries inject's options, as a
ConfigMap (data keys are the flag names: issuer, issuer-kind, tls-secret, ...) or as

  apiVersion: metrics-guard.eck.dev/v1alpha1
  kind: MetricsGuard
  spec: {issuer: metrics-ca, issuerKind: ClusterIssuer, serviceMonitor: true}

results says what was done to each operator, and why one was left alone; an operator
that stays without secured metrics is a result of severity error, and the function then
exits 3 (2 for an invalid functionConfig or input), which fails kustomize build.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKRM(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

// runKRM is the KRM function: ResourceList in, ResourceList out.
func runKRM(in io.Reader, out, stderr io.Writer) error {
	rw := &kio.ByteReadWriter{Reader: in, Writer: out, KeepReaderAnnotations: true}
	code := exitOK
	err := framework.Execute(framework.ResourceListProcessorFunc(func(rl *framework.ResourceList) error {
		var c int
		c, err := processResourceList(rl)
		code = c
		return err
	}), rw)
	if err == nil {
		return nil
	}
	var results framework.Results
	if errors.As(err, &results) {
		fmt.Fprintln(stderr, results.Error())
		if code == exitOK {
			code = exitError
		}
		return &exitCodeError{code: code}
	}
	return usageError(err)
}

// processResourceList secures rl's items in place and sets its results. It returns the exit
// code and, when a result is an error, the results as the error.
func processResourceList(rl *framework.ResourceList) (int, error) {
	opts, err := krmRenderOptions(rl.FunctionConfig)
	if err != nil {
		rl.Results = append(rl.Results, &framework.Result{Severity: framework.Error, Message: "functionConfig: " + err.Error()})
		return exitError, rl.Results
	}

	// The items as one manifest stream, each document as the ResourceList holds it.
	var stream bytes.Buffer
	texts := make([]string, len(rl.Items))
	for i, item := range rl.Items {
		s, err := item.String()
		if err != nil {
			return exitError, fmt.Errorf("item %d: %w", i, err)
		}
		texts[i] = s
		if i > 0 {
			stream.WriteString("---\n")
		}
		stream.WriteString(s)
	}
	res, err := render.Inject("ResourceList", stream.Bytes(), opts)
	if err != nil {
		r := &framework.Result{Severity: framework.Error, Message: err.Error()}
		var rerr *render.Error
		if errors.As(err, &rerr) && rerr.Index >= 0 && rerr.Index < len(rl.Items) {
			r.Message = rerr.Err.Error()
			r.ResourceRef, r.File = itemRef(rl.Items[rerr.Index])
		}
		rl.Results = append(rl.Results, r)
		return exitError, rl.Results
	}

	nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(res.Output), OmitReaderAnnotations: true}).Read()
	if err != nil {
		return exitError, fmt.Errorf("reading the secured items back: %w", err)
	}
	if len(nodes) < len(rl.Items) {
		return exitError, fmt.Errorf("the secured stream has %d documents, the ResourceList %d items", len(nodes), len(rl.Items))
	}
	// An item inject left alone stays the node it was read as; a changed one is the secured
	// document (inject keeps its comments); the companions come last.
	for i := range rl.Items {
		if s, err := nodes[i].String(); err != nil || s != texts[i] {
			rl.Items[i] = nodes[i]
		}
	}
	rl.Items = append(rl.Items, nodes[len(rl.Items):]...)

	rl.Results = append(rl.Results, krmResults(rl.Items, res)...)
	for _, r := range rl.Results {
		if r.Severity == framework.Error {
			return exitUnsecured, rl.Results
		}
	}
	return exitOK, nil
}

// noteSubject is how render names an operator at the start of a note or an unsecured entry:
// "StatefulSet elastic-system/elastic-operator: ...".
var noteSubject = regexp.MustCompile(`^(StatefulSet|Deployment) ([^/\s]+)/([^:\s]+): `)

// krmResults turns inject's notes into results: one per operator, info when it was secured
// or left alone by choice, warning when inject warned, error when it stays unsecured.
func krmResults(items []*yaml.RNode, res *render.Result) framework.Results {
	unsecured := map[string]string{}
	var order []string
	for _, u := range res.Unsecured {
		m := noteSubject.FindStringSubmatch(u)
		if m == nil {
			continue
		}
		unsecured[m[0]] = strings.TrimPrefix(u, m[0])
		order = append(order, m[0])
	}
	var out framework.Results
	seen := map[string]bool{}
	for _, n := range res.Notes {
		r := &framework.Result{Severity: framework.Info, Message: n}
		if m := noteSubject.FindStringSubmatch(n); m != nil {
			r.Message = strings.TrimPrefix(n, m[0])
			r.ResourceRef, r.File = operatorRef(items, m[1], m[2], m[3])
			if verdict, ok := unsecured[m[0]]; ok {
				seen[m[0]] = true
				r.Severity = framework.Error
				if !strings.Contains(r.Message, verdict) {
					r.Message += "; not secured: " + verdict
				}
			}
		}
		if r.Severity == framework.Info && strings.Contains(r.Message, "\n  warning: ") {
			r.Severity = framework.Warning
		}
		out = append(out, r)
	}
	for _, s := range order { // an unsecured operator without a note of its own
		if seen[s] {
			continue
		}
		m := noteSubject.FindStringSubmatch(s)
		r := &framework.Result{Severity: framework.Error, Message: "not secured: " + unsecured[s]}
		r.ResourceRef, r.File = operatorRef(items, m[1], m[2], m[3])
		out = append(out, r)
	}
	return out
}

// operatorRef finds the item of that kind, namespace and name, for a result's references.
func operatorRef(items []*yaml.RNode, kind, namespace, name string) (*yaml.ResourceIdentifier, *framework.File) {
	for _, it := range items {
		if it.GetKind() == kind && it.GetName() == name && (it.GetNamespace() == namespace || it.GetNamespace() == "") {
			ref, file := itemRef(it)
			ref.Namespace = namespace
			return ref, file
		}
	}
	return &yaml.ResourceIdentifier{TypeMeta: yaml.TypeMeta{APIVersion: "apps/v1", Kind: kind}, NameMeta: yaml.NameMeta{Name: name, Namespace: namespace}}, nil
}

// itemRef is the reference of an item, and the file kustomize or kpt read it from, if known.
func itemRef(it *yaml.RNode) (*yaml.ResourceIdentifier, *framework.File) {
	ref := &yaml.ResourceIdentifier{
		TypeMeta: yaml.TypeMeta{APIVersion: it.GetApiVersion(), Kind: it.GetKind()},
		NameMeta: yaml.NameMeta{Name: it.GetName(), Namespace: it.GetNamespace()},
	}
	path, index, err := kioutil.GetFileAnnotations(it)
	if err != nil || path == "" {
		return ref, nil
	}
	file := &framework.File{Path: path}
	fmt.Sscan(index, &file.Index)
	return ref, file
}

// krmRenderOptions reads the functionConfig into inject's options, through inject's own
// flags, so that a value means what the flag of the same name means.
func krmRenderOptions(fc *yaml.RNode) (render.Options, error) {
	o := &renderOptions{}
	fs := pflag.NewFlagSet("functionConfig", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.addFlags(fs)
	settings, err := krmSettings(fc)
	if err != nil {
		return render.Options{}, err
	}
	allowed := map[string]bool{}
	for _, f := range krmOptions {
		allowed[f] = true
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var problems []string
	for _, k := range keys {
		if !allowed[k] || fs.Lookup(k) == nil {
			problems = append(problems, fmt.Sprintf("unknown option %q (known: %s)", k, strings.Join(krmOptions, ", ")))
			continue
		}
		if err := fs.Set(k, settings[k]); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", k, err))
		}
	}
	if len(problems) > 0 {
		return render.Options{}, errors.New(strings.Join(problems, "; "))
	}
	if !fs.Changed("issuer") {
		o.Defaults.IssuerKind = ""
	}
	if err := policy.ValidateDefaults(o.Defaults); err != nil {
		return render.Options{}, err
	}
	return o.Options, nil
}

// krmSettings are the functionConfig's options as flag name to flag value.
func krmSettings(fc *yaml.RNode) (map[string]string, error) {
	out := map[string]string{}
	if fc == nil || fc.IsNilOrEmpty() {
		return out, nil
	}
	kind, apiVersion := fc.GetKind(), fc.GetApiVersion()
	switch {
	case kind == "ConfigMap" && apiVersion == "v1":
		for k, v := range fc.GetDataMap() {
			out[k] = v
		}
		return out, nil
	case kind == KRMKind && apiVersion == v1alpha1.GroupVersion.String():
		spec := fc.Field("spec")
		if spec == nil || spec.Value.IsNilOrEmpty() {
			return out, nil
		}
		if spec.Value.YNode().Kind != yaml.MappingNode {
			return nil, fmt.Errorf("spec: must be a mapping")
		}
		err := spec.Value.VisitFields(func(f *yaml.MapNode) error {
			key := f.Key.YNode().Value
			v, err := flagValue(f.Value)
			if err != nil {
				return fmt.Errorf("spec.%s: %w", key, err)
			}
			out[kebab(key)] = v
			return nil
		})
		return out, err
	default:
		return nil, fmt.Errorf("%s %s: want a ConfigMap (v1) or a %s (%s)", apiVersion, kind, KRMKind, v1alpha1.GroupVersion)
	}
}

// flagValue writes a field of a MetricsGuard's spec as its flag would be given: a scalar as
// it is, a mapping as k=v pairs (for the label and annotation flags).
func flagValue(n *yaml.RNode) (string, error) {
	switch n.YNode().Kind {
	case yaml.ScalarNode:
		return n.YNode().Value, nil
	case yaml.MappingNode:
		m := map[string]string{}
		err := n.VisitFields(func(f *yaml.MapNode) error {
			if f.Value.YNode().Kind != yaml.ScalarNode {
				return fmt.Errorf("%s: want a string", f.Key.YNode().Value)
			}
			m[f.Key.YNode().Value] = f.Value.YNode().Value
			return nil
		})
		if err != nil {
			return "", err
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		pairs := make([]string, len(keys))
		for i, k := range keys {
			if strings.Contains(k, ",") || strings.Contains(m[k], ",") {
				return "", fmt.Errorf("%s: a comma cannot be given here", k)
			}
			pairs[i] = k + "=" + m[k]
		}
		return strings.Join(pairs, ","), nil
	default:
		return "", fmt.Errorf("want a string, a number, a boolean or a mapping of strings")
	}
}

// kebab turns a spec field (issuerKind) into its flag's name (issuer-kind).
func kebab(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
