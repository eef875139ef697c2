package eck

import (
	"regexp"
	"strconv"
	"strings"
)

// Type is how ECK (viper and spf13/cast) converts a setting's text.
type Type int

// Setting types.
const (
	String Type = iota
	Bool
	Int
)

// Setting is one ECK setting: its flag, which is also its eck.yaml key, and the environment
// variable viper reads it from. The table below is the only place the guard names them.
type Setting struct {
	// Name is the flag (--metrics-port) and the eck.yaml key (metrics-port).
	Name string
	Type Type
	// Default is what ECK uses when no source sets it.
	Default string
}

// Env is the variable viper's AutomaticEnv reads, with ECK's "-" -> "_" replacer.
func (s Setting) Env() string {
	return strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
}

// The settings that decide how ECK serves its metrics, and those the metrics port must not
// clash with.
var (
	// MetricsPort is the metrics port; ECK's default 0 still serves metrics, on a random port.
	MetricsPort = Setting{Name: "metrics-port", Type: Int, Default: "0"}
	// MetricsHost is the address the metrics server binds to.
	MetricsHost = Setting{Name: "metrics-host", Type: String, Default: "0.0.0.0"}
	// MetricsSecure turns on TLS plus TokenReview and SubjectAccessReview checks (ECK >= 2.16).
	MetricsSecure = Setting{Name: "metrics-secure", Type: Bool, Default: "false"}
	// MetricsCertDir holds tls.crt and tls.key for secure metrics; empty means
	// controller-runtime's default, DefaultMetricsCertDir.
	MetricsCertDir = Setting{Name: "metrics-cert-dir", Type: String, Default: ""}
	// WebhookPort is ECK's admission webhook port.
	WebhookPort = Setting{Name: "webhook-port", Type: Int, Default: "9443"}
	// Config is the path of eck.yaml. Only the flag sets it (ECK binds it to a variable).
	Config = Setting{Name: "config", Type: String}
)

// MetricsSettings are the settings a verdict is made of, in the order reasons list them.
var MetricsSettings = []Setting{MetricsSecure, MetricsPort, MetricsCertDir, MetricsHost}

// DefaultMetricsCertDir is where controller-runtime looks for the metrics certificate when
// metrics-cert-dir is empty, so a Secret mounted there needs no setting.
const DefaultMetricsCertDir = "/tmp/k8s-metrics-server/serving-certs"

// Entrypoint is the ECK image's ENTRYPOINT: what runs when the container sets no command.
const Entrypoint = "/elastic-operator"

// managerFlags are the flags of ECK's manager command (2.16 to 3.5) and of its root command,
// by whether pflag gives them a value without one (booleans) or takes the next word. A flag
// that is in neither makes ECK exit with "unknown flag", and the guard says it cannot know.
var managerFlags = map[string]bool{
	// booleans: "--name" alone is true and never consumes the next word
	"auto-port-forward": true, "disable-config-watch": true, "disable-telemetry": true,
	"enable-leader-election": true, "enable-tracing": true, "enable-webhook": true,
	"enforce-rbac-on-refs": true, "manage-webhook-certs": true, "metrics-secure": true,
	"restrict-watched-resources": true, "ubi-only": true, "validate-storage-class": true,
	"development": true,
	// values
	"ca-dir": false, "ca-cert-rotate-before": false, "ca-cert-validity": false,
	"cert-rotate-before": false, "cert-validity": false, "config": false,
	"container-registry": false, "container-repository": false, "container-suffix": false,
	"debug-http-listen": false, "elasticsearch-client-timeout": false,
	"elasticsearch-observation-interval": false, "distribution-channel": false,
	"exposed-node-labels": false, "password-hash-cache-size": false, "ip-family": false,
	"kube-client-timeout": false, "kube-client-qps": false, "max-concurrent-reconciles": false,
	"metrics-port": false, "metrics-host": false, "metrics-cert-dir": false, "namespaces": false,
	"namespace-selector": false, "operator-namespace": false, "password-length": false,
	"telemetry-interval": false, "webhook-cert-dir": false, "webhook-secret": false,
	"webhook-name": false, "webhook-port": false, "set-default-security-context": false,
	"log-verbosity": false,
}

// settingOf returns the metrics setting with a flag name.
func settingOf(name string) (Setting, bool) {
	for _, s := range append(MetricsSettings, Config) {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// castBool converts a value as spf13/cast's ToBool does for viper.GetBool: ECK ignores the
// error, so anything cast cannot read ("yes", "on") is false.
func castBool(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case int:
		return b != 0
	case int64:
		return b != 0
	case uint64:
		return b != 0
	case float64:
		return b != 0
	case string:
		x, err := strconv.ParseBool(b)
		return err == nil && x
	}
	return false
}

// stringNumber is cast's pattern for a decimal number written as a string.
var stringNumber = regexp.MustCompile(`^([-+]?\d*)(\.\d*)?$`)

// castInt converts a value as spf13/cast's ToInt does for viper.GetInt (0 when it cannot):
// base prefixes are allowed, a decimal part is dropped, true is 1.
func castInt(v any) int {
	switch n := v.(type) {
	case bool:
		if n {
			return 1
		}
		return 0
	case int:
		return n
	case int64:
		return int(n)
	case uint64:
		return int(n)
	case float64:
		return int(n)
	case string:
		if strings.Contains(n, ".") {
			if m := stringNumber.FindStringSubmatch(n); m != nil {
				n = m[1]
				switch n {
				case "", "-", "+":
					n += "0"
				}
			}
		}
		x, err := strconv.ParseInt(n, 0, 0)
		if err != nil {
			return 0
		}
		return int(x)
	}
	return 0
}

// castString converts a value as spf13/cast's ToString does for viper.GetString.
func castString(v any) string {
	switch s := v.(type) {
	case nil:
		return ""
	case string:
		return s
	case bool:
		return strconv.FormatBool(s)
	case int:
		return strconv.Itoa(s)
	case int64:
		return strconv.FormatInt(s, 10)
	case uint64:
		return strconv.FormatUint(s, 10)
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64)
	}
	return ""
}
