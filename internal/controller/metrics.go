package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Outcomes of a reconcile of a guarded operator.
const (
	stateSecured    = "secured"
	stateWaiting    = "waiting_for_certificate"
	stateNotSecured = "not_secured"
	stateInvalid    = "invalid_settings"
)

// operators counts reconciles of guarded operators by outcome, on the guard's own
// (authenticated) metrics endpoint, next to controller-runtime's reconcile metrics.
var operators = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "eck_metrics_guard_operator_reconciles_total",
	Help: "Reconciles of guarded ECK operators, by outcome.",
}, []string{"outcome"})

func init() {
	metrics.Registry.MustRegister(operators)
}

// policyOperators is, per MetricsSecurityPolicy, how many covered ECK operators are in the
// end state (compliant="true") and how many are not.
var policyOperators = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "eck_metrics_guard_policy_operators",
	Help: "ECK operators covered by a MetricsSecurityPolicy, by compliance.",
}, []string{"policy", "compliant"})

func init() {
	metrics.Registry.MustRegister(policyOperators)
}
