package webhook

import (
	"bytes"
	"encoding/json"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// workloadView is what the guard reads of a StatefulSet or a Deployment: its name, labels,
// annotations and deletion, the selector and the pod template. The rest (managedFields,
// replicas, update strategies, volume claim templates, status) is skipped, not decoded: a
// request as kubectl apply sends it is mostly managedFields and the last-applied copy.
// A workload decoded this way has only these fields set, which is all the handler reads,
// and the patch is made from its pod template alone.
type workloadView struct {
	Metadata struct {
		Name              string            `json:"name,omitempty"`
		GenerateName      string            `json:"generateName,omitempty"`
		Namespace         string            `json:"namespace,omitempty"`
		Labels            map[string]string `json:"labels,omitempty"`
		Annotations       map[string]string `json:"annotations,omitempty"`
		DeletionTimestamp *metav1.Time      `json:"deletionTimestamp,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Selector *metav1.LabelSelector  `json:"selector,omitempty"`
		Template corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
}

// decodeWorkload decodes raw into obj, a StatefulSet or a Deployment, through workloadView.
func decodeWorkload(raw []byte, obj workloadObject) error {
	var v workloadView
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	m := metav1.ObjectMeta{Name: v.Metadata.Name, GenerateName: v.Metadata.GenerateName, Namespace: v.Metadata.Namespace,
		Labels: v.Metadata.Labels, Annotations: v.Metadata.Annotations, DeletionTimestamp: v.Metadata.DeletionTimestamp}
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		o.ObjectMeta, o.Spec.Selector, o.Spec.Template = m, v.Spec.Selector, v.Spec.Template
	case *appsv1.Deployment:
		o.ObjectMeta, o.Spec.Selector, o.Spec.Template = m, v.Spec.Selector, v.Spec.Template
	default:
		return json.Unmarshal(raw, obj)
	}
	return nil
}

// configMapView is what the guard reads of a ConfigMap: name, labels, annotations,
// deletion, data and binaryData; not its managedFields.
type configMapView struct {
	Metadata struct {
		Name              string            `json:"name,omitempty"`
		GenerateName      string            `json:"generateName,omitempty"`
		Namespace         string            `json:"namespace,omitempty"`
		Labels            map[string]string `json:"labels,omitempty"`
		Annotations       map[string]string `json:"annotations,omitempty"`
		DeletionTimestamp *metav1.Time      `json:"deletionTimestamp,omitempty"`
	} `json:"metadata"`
	Data       map[string]string `json:"data,omitempty"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
}

func decodeConfigMap(raw []byte, cm *corev1.ConfigMap) error {
	var v configMapView
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cm.ObjectMeta = metav1.ObjectMeta{Name: v.Metadata.Name, GenerateName: v.Metadata.GenerateName, Namespace: v.Metadata.Namespace,
		Labels: v.Metadata.Labels, Annotations: v.Metadata.Annotations, DeletionTimestamp: v.Metadata.DeletionTimestamp}
	cm.Data, cm.BinaryData = v.Data, v.BinaryData
	return nil
}

// mayBeOperator reports whether a workload's JSON can be an ECK operator's, without decoding
// it: the guard recognises an operator by a container (or sidecar init container) whose image
// basename starts with eck-operator (eck.IsOperatorImage), so the text must hold those bytes,
// unless it spells a letter of them as a \u escape (then it is decoded, to be sure). A
// request that is not ours costs a scan of its bytes instead of a decode of its pod template.
func mayBeOperator(raw []byte) bool {
	return bytes.Contains(raw, operatorImage) || bytes.Contains(raw, jsonEscape)
}

var (
	operatorImage = []byte("eck-operator")
	jsonEscape    = []byte(`\u`)
)
