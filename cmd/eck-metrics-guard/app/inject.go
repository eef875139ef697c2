package app

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/render"
)

// renderOptions are the flags inject and diff share; they mirror the annotations.
type renderOptions struct {
	file   string
	policy string
	render.Options
}

func (o *renderOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.file, "filename", "f", "", "manifest file to secure, or - for standard input (required)")
	fs.StringVar(&o.Defaults.TLSSecret, "tls-secret", "", "Secret with tls.crt and tls.key to serve metrics with (like the annotation metrics-guard.eck.dev/tls-secret)")
	fs.StringVar(&o.Defaults.Issuer, "issuer", "", "cert-manager issuer to request the metrics certificate from; adds a Certificate (metrics-guard.eck.dev/issuer)")
	fs.StringVar(&o.Defaults.IssuerKind, "issuer-kind", policy.IssuerKind, "Issuer or ClusterIssuer (metrics-guard.eck.dev/issuer-kind)")
	fs.IntVar(&o.Defaults.Port, "metrics-port", 0, "metrics port; 0 picks 8081, or the next free port up to 8099 (metrics-guard.eck.dev/metrics-port)")
	fs.StringVar(&o.Defaults.CertDir, "cert-dir", "", "where to mount the TLS Secret; empty means ECK's default /tmp/k8s-metrics-server/serving-certs (metrics-guard.eck.dev/cert-dir)")
	fs.StringVarP(&o.Namespace, "namespace", "n", "default", "namespace of objects that do not name one")
	addCompanionFlags(fs, &o.Defaults, false)
	fs.StringVar(&o.policy, "policy", "", "file of MetricsSecurityPolicies to apply instead of opting in every operator: Audit reports (exit 3 if a covered operator is not secured), Mutate and Enforce secure, Enforce fails on opt-outs and operators left open; Namespace objects of the stream give the labels they select")
}

// run reads the input, secures it and returns input and output.
func (o *renderOptions) run(cmd *cobra.Command) (in []byte, res *render.Result, err error) {
	if o.file == "" {
		return nil, nil, usageError(fmt.Errorf("-f/--filename is required (a file, or - for standard input)"))
	}
	if !cmd.Flags().Changed("issuer") {
		o.Defaults.IssuerKind = ""
	}
	if err := policy.ValidateDefaults(o.Defaults); err != nil {
		return nil, nil, usageError(err)
	}
	if o.policy != "" {
		raw, err := os.ReadFile(o.policy)
		if err != nil {
			return nil, nil, usageError(fmt.Errorf("--policy: %w", err))
		}
		if o.Policies, err = policy.ParsePolicies(raw); err != nil {
			return nil, nil, usageError(fmt.Errorf("--policy %s: %w", o.policy, err))
		}
	}
	if o.file == "-" {
		in, err = io.ReadAll(cmd.InOrStdin())
	} else {
		in, err = os.ReadFile(o.file)
	}
	if err != nil {
		return nil, nil, usageError(fmt.Errorf("failed to read %s: %w", o.file, err))
	}
	name := o.file
	if name == "-" {
		name = "<stdin>"
	}
	res, err = render.Inject(name, in, o.Options)
	if err != nil {
		return nil, nil, usageError(err)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(cmd.ErrOrStderr(), n)
	}
	return in, res, nil
}

func usageError(err error) error { return &exitCodeError{code: exitError, err: err} }

func newInjectCommand() *cobra.Command {
	o := &renderOptions{}
	cmd := &cobra.Command{
		Use:   "inject -f FILE|-",
		Short: "Secure the ECK operators in a manifest stream and print the whole stream",
		Long: `inject reads Kubernetes manifests (an ECK operator.yaml, or helm template output),
secures every ECK operator in them as the webhook would, adds the companion objects
(metrics Service, auth-delegator ClusterRoleBinding, cert-manager Certificate with
--issuer, ServiceMonitor with --service-monitor) and prints the stream. Documents it
does not change are printed as read, in order. What it did goes to standard error.`,
		Example: "  eck-metrics-guard inject -f operator.yaml --issuer metrics-ca > operator.secured.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, res, err := o.run(cmd)
			if err != nil {
				return err
			}
			if _, err := cmd.OutOrStdout().Write(res.Output); err != nil {
				return err
			}
			// Under policies, a covered operator left unsecured fails the run, as in diff.
			if o.policy != "" && len(res.Unsecured) > 0 {
				for _, u := range res.Unsecured {
					fmt.Fprintln(cmd.ErrOrStderr(), "not secured: "+u)
				}
				return &exitCodeError{code: exitUnsecured}
			}
			return nil
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func newDiffCommand() *cobra.Command {
	o := &renderOptions{}
	cmd := &cobra.Command{
		Use:   "diff -f FILE|-",
		Short: "Show what inject would change, as a unified diff; exit 1 if anything would, 3 if an operator stays unsecured",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, res, err := o.run(cmd)
			if err != nil {
				return err
			}
			unsecured := func(err error) error {
				if len(res.Unsecured) == 0 {
					return err
				}
				for _, u := range res.Unsecured {
					fmt.Fprintln(cmd.ErrOrStderr(), "not secured: "+u)
				}
				return &exitCodeError{code: exitUnsecured}
			}
			if bytes.Equal(in, res.Output) {
				return unsecured(nil)
			}
			name := o.file
			if name == "-" {
				name = "<stdin>"
			}
			diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
				A:        difflib.SplitLines(string(in)),
				B:        difflib.SplitLines(string(res.Output)),
				FromFile: name,
				ToFile:   name + " (secured)",
				Context:  3,
			})
			if err != nil {
				return usageError(err)
			}
			fmt.Fprint(cmd.OutOrStdout(), diff)
			return unsecured(&exitCodeError{code: exitChanges})
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}
