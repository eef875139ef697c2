package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

func TestOptionsCovered(t *testing.T) {
	flags := Options{ServiceMonitor: true, Certificate: mutate.CertificateOptions{Duration: 2160 * time.Hour, RenewBefore: 720 * time.Hour}}
	day := &metav1.Duration{Duration: 24 * time.Hour}
	off := false
	tests := map[string]struct {
		mode     v1alpha1.Mode
		defaults v1alpha1.PolicyDefaults
		want     Options
	}{
		"audit changes nothing": {mode: v1alpha1.ModeAudit, defaults: v1alpha1.PolicyDefaults{ServiceMonitor: &off, Certificate: &v1alpha1.CertificateDefaults{Duration: day}}, want: flags},
		"mutate takes the policy's": {mode: v1alpha1.ModeMutate, defaults: v1alpha1.PolicyDefaults{ServiceMonitor: &off, Certificate: &v1alpha1.CertificateDefaults{
			Duration: day, RenewBefore: &metav1.Duration{Duration: time.Hour}}},
			want: Options{ServiceMonitor: false, Certificate: mutate.CertificateOptions{Duration: 24 * time.Hour, RenewBefore: time.Hour}}},
		// A duration of 24h under the flags' renewBefore of 720h: cert-manager would refuse it.
		"duration only, shorter than the flags' renewBefore": {mode: v1alpha1.ModeEnforce, defaults: v1alpha1.PolicyDefaults{Certificate: &v1alpha1.CertificateDefaults{Duration: day}},
			want: Options{ServiceMonitor: true, Certificate: mutate.CertificateOptions{Duration: 24 * time.Hour, RenewBefore: 8 * time.Hour}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := flags.covered(&policy.Coverage{Policy: "p", Mode: tc.mode, Defaults: tc.defaults})
			if got.ServiceMonitor != tc.want.ServiceMonitor || got.Certificate != tc.want.Certificate {
				t.Errorf("covered = %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := flags.covered(nil); got.Certificate != flags.Certificate || !got.ServiceMonitor {
		t.Errorf("no policy: %+v", got)
	}
}
