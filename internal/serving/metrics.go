package serving

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// shed counts the admissions answered 429 because MaxInFlight were in flight.
var shed = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "eck_metrics_guard_webhook_shed_total",
	Help: "Admission requests answered 429 because the webhook server had --webhook-max-in-flight requests in flight.",
})

// refused counts the connections closed at once because twice --webhook-max-in-flight were open.
var refused = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "eck_metrics_guard_webhook_refused_connections_total",
	Help: "Connections to the webhook server closed as soon as accepted because twice --webhook-max-in-flight connections were open.",
})

func init() { ctrlmetrics.Registry.MustRegister(shed, refused) }

// Shed is the number of admissions shed so far.
func Shed() float64 {
	var m dto.Metric
	_ = shed.Write(&m)
	return m.GetCounter().GetValue()
}
