package controller

// The guard's permissions, from which `make manifests` generates config/rbac/role.yaml. The
// webhook and the controller read workloads, ConfigMaps and Namespaces through one cache;
// the controller patches what the webhook would have mutated and applies the companion
// objects. It reads Secrets one by one, by metadata, only to know if a certificate exists.
// Binding system:auth-delegator needs "bind" on that one ClusterRole. Events go through the
// events.k8s.io API, except leader election's, which controller-runtime records through the
// core API. Leader election, and the TokenReviews and SubjectAccessReviews that protect the
// guard's own metrics, close it.
// With --webhook-cert-mode=self-managed the guard writes the CA into the caBundle of its own
// MutatingWebhookConfiguration (OPA's cert-controller lists and watches them); the Secret it
// keeps the certificate in needs more than "get", but only in the guard's own namespace: that
// Role is not generated here (a namespace= marker would put it into config/rbac, so into every
// install, cert-manager's too) but hand-written in config/selfmanaged/role.yaml.
//
// +kubebuilder:rbac:groups=apps,resources=statefulsets;deployments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=system:auth-delegator
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=metrics-guard.eck.dev,resources=metricssecuritypolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=metrics-guard.eck.dev,resources=metricssecuritypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;list;watch;update
