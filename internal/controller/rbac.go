package controller

// The guard's permissions, from which `make manifests` generates config/rbac/role.yaml: the
// ClusterRole eck-metrics-guard, and the Role eck-metrics-guard in the guard's own namespace
// (the chart renders it in the release namespace). README.md, "Permissions, and why", explains
// every rule; test/e2e/packaging/sar_test.go walks them with SubjectAccessReviews against a
// real API server and fails on anything outside its allow-list.
//
// The webhook and the controller read workloads, ConfigMaps and Namespaces through one cache;
// the controller patches what the webhook would have mutated and applies the companion
// objects. It reads no Secret outside its own namespace: whether a certificate exists comes
// from the cert-manager Certificate's Ready condition.
//
// ClusterRoleBindings: the controller keeps one, named (--auth-delegator-binding, default
// eck-metrics-guard:auth-delegator), whose subjects it computes; get, list, watch (with a
// metadata.name field selector), update, patch and delete are restricted to that name.
// Kubernetes cannot restrict create by name (the name is not known when create is
// authorized), so create is cluster-wide; what a created binding may grant is limited by the
// API server's escalation check: "bind" on system:auth-delegator only, or rules the guard
// already holds. Changing the default name means changing these markers (the chart rewrites
// the name in its copy of the rules to <release>:auth-delegator).
//
// Leader election's Lease, and the core Events leader election records, are in the guard's
// own namespace only (namespace= markers: a Role). With --leader-election-namespace elsewhere,
// bind that Role there instead.
//
// With --webhook-cert-mode=self-managed the guard writes the CA into the caBundle of its own
// MutatingWebhookConfiguration, and keeps the Secret of its certificate: that ClusterRole
// (update by resourceNames) and Role are not generated here, so that installs with
// cert-manager do not get them, but hand-written in config/selfmanaged/role.yaml.
//
// +kubebuilder:rbac:groups=apps,resources=statefulsets;deployments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=get;list;watch;update;patch;delete,resourceNames=eck-metrics-guard:auth-delegator
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=system:auth-delegator
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=openreports.io,resources=reports,verbs=list;create
// +kubebuilder:rbac:groups=openreports.io,resources=reports,verbs=patch;delete,resourceNames=eck-metrics-guard
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=metrics-guard.eck.dev,resources=metricssecuritypolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics-guard.eck.dev,resources=metricssecuritypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=create,namespace=eck-metrics-guard
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;update;patch,resourceNames=eck-metrics-guard.metrics-guard.eck.dev,namespace=eck-metrics-guard
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch,namespace=eck-metrics-guard
