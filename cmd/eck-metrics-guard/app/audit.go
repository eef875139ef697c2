package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/audit"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/controller"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

type auditOptions struct {
	kubeconfig, context, output, namespace string
	defaults                               policy.Defaults
}

func newAuditCommand() *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List every ECK operator of a cluster with how its metrics are exposed; exit 3 if any is not secured",
		Long: `audit reads the cluster with your kubeconfig (read-only: StatefulSets, Deployments,
ConfigMaps, Namespaces, MetricsSecurityPolicies and MutatingWebhookConfigurations; nothing
needs to be installed) and judges every ECK operator's metrics endpoint by what ECK will read:
secured, incomplete (TLS and tokens, not the end state), unknown (the guard cannot tell: never
compliant), open (plain HTTP without authentication) or none (nothing served). It says what
the guard does or would do for each, and whether the guard is installed.
-o report prints OpenReports Reports, one per namespace, as the controller keeps them.
Exit codes: 0 every operator secured, 2 trouble, 3 an operator is not secured.`,
		Example: "  eck-metrics-guard audit\n  eck-metrics-guard audit -o json | jq '.operators[] | select(.exposure != \"secured\")'",
		Args:    cobra.NoArgs,
		RunE:    o.run,
	}
	fs := cmd.Flags()
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty: $KUBECONFIG, else ~/.kube/config, else in-cluster")
	fs.StringVar(&o.context, "context", "", "kubeconfig context; empty: the current one")
	fs.StringVarP(&o.output, "output", "o", "table", "table, json, yaml, or report: the OpenReports Reports (openreports.io/v1alpha1) the controller keeps, one per namespace")
	fs.StringVarP(&o.namespace, "namespace", "n", "", "audit this namespace only; empty: every namespace")
	fs.StringVar(&o.defaults.Issuer, "default-issuer", "", "the guard's --default-issuer, if it is installed with one (what the guard would do depends on it)")
	fs.StringVar(&o.defaults.IssuerKind, "default-issuer-kind", "", "the guard's --default-issuer-kind")
	return cmd
}

func (o *auditOptions) run(cmd *cobra.Command, _ []string) error {
	if o.output != "table" && o.output != "json" && o.output != "yaml" && o.output != "report" {
		return usageError(fmt.Errorf("-o/--output %q: must be table, json, yaml or report", o.output))
	}
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = o.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{CurrentContext: o.context}).ClientConfig()
	if err != nil {
		return usageError(fmt.Errorf("no cluster to audit: %w", err))
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return usageError(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return usageError(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return usageError(fmt.Errorf("failed to reach the cluster: %w", err))
	}
	ctx := cmd.Context()
	lookup := cluster.CachedLookup{Reader: c, Policies: controller.PoliciesServed(c.RESTMapper())}
	ops, err := audit.Operators(ctx, lookup, o.namespace, o.defaults)
	if err != nil {
		return usageError(err)
	}
	report := audit.Report{Operators: ops}
	var hooks admissionregistrationv1.MutatingWebhookConfigurationList
	if err := c.List(ctx, &hooks); err == nil {
		report.GuardInstalled = guardRegistered(hooks.Items)
	}
	if err := o.print(cmd, report); err != nil {
		return usageError(err)
	}
	if !report.Compliant() {
		return &exitCodeError{code: exitUnsecured}
	}
	return nil
}

// guardRegistered reports whether one of the configurations holds the guard's webhooks.
func guardRegistered(configs []admissionregistrationv1.MutatingWebhookConfiguration) bool {
	for _, c := range configs {
		for _, w := range c.Webhooks {
			if strings.HasSuffix(w.Name, ".metrics-guard.eck.dev") {
				return true
			}
		}
	}
	return false
}

func (o *auditOptions) print(cmd *cobra.Command, r audit.Report) error {
	out := cmd.OutOrStdout()
	switch o.output {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "yaml":
		b, err := yaml.Marshal(r)
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	case "report":
		for i, rep := range audit.Reports(r.Operators) {
			b, err := yaml.Marshal(rep)
			if err != nil {
				return err
			}
			if i > 0 {
				fmt.Fprintln(out, "---")
			}
			if _, err := out.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tKIND\tVERSION\tEXPOSURE\tPORT\tPOLICY\tWHY\tGUARD")
	for _, f := range r.Operators {
		port := "-"
		if f.Port != 0 {
			port = fmt.Sprint(f.Port)
		}
		why := strings.Join(f.Reasons, "; ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Namespace, f.Name, f.Kind, or(f.Version, "-"), f.Exposure, port, policyOf(f), or(why, "-"), f.Action)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	installed := "the guard is not installed (no webhook configuration of eck-metrics-guard): nothing secures these operators"
	if r.GuardInstalled {
		installed = "the guard is installed"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d ECK operator(s); %s\n", len(r.Operators), installed)
	return nil
}

func policyOf(f audit.Finding) string {
	if f.Policy == "" {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", f.Policy, f.Mode)
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
