package compliance

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestOverrides(t *testing.T) {
	tests := map[string]struct {
		env  []corev1.EnvVar
		args []string
		want string // "" for no finding
	}{
		"nothing":               {},
		"secure env true":       {env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "true"}, {Name: "METRICS_PORT", Value: "8081"}}},
		"secure env false":      {env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "false"}}, want: `env METRICS_SECURE sets metrics-secure to "false", over eck.yaml`},
		"port env elsewhere":    {env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "9999"}}, want: `env METRICS_PORT sets metrics-port to "9999", over eck.yaml's 8081`},
		"secure from elsewhere": {env: []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{}}}, want: "env METRICS_SECURE takes metrics-secure from elsewhere (valueFrom)"},
		"flag false":            {args: []string{"manager", "--metrics-secure=false"}, want: `flag --metrics-secure sets metrics-secure to "false"`},
		"flag true":             {args: []string{"manager", "--metrics-secure=true", "--metrics-port=8081"}},
		"cert dir elsewhere":    {env: []corev1.EnvVar{{Name: "METRICS_CERT_DIR", Value: "/elsewhere"}}, want: `env METRICS_CERT_DIR sets metrics-cert-dir to "/elsewhere", not /certs where the certificate is`},
		"cert dir the same":     {args: []string{"--metrics-cert-dir=/certs/"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := strings.Join(overrides(corev1.Container{Name: "manager", Env: tc.env, Args: tc.args}, 8081, "/certs"), "\n")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("findings %q, want %q", got, tc.want)
			}
		})
	}
}
