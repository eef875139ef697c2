package patch

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// templateSeed has fields the Go types do not know at every level the edits reach.
const templateSeed = `{"metadata":{"labels":{"app":"eck"},"annotations":{"a/b~c":"1"},"futureMeta":1},
 "spec":{"futureSpec":{"x":[1,2]},
  "containers":[{"name":"manager","image":"eck-operator:3.5.0","futureContainer":true,
   "args":["manager","--config=/conf/eck.yaml"],
   "env":[{"name":"A","value":"1","futureEnv":"kept"},{"name":"B","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
   "ports":[{"name":"https-webhook","containerPort":9443,"protocol":"TCP","futurePort":0}],
   "volumeMounts":[{"name":"conf","mountPath":"/conf","readOnly":true,"futureMount":"x"}]}],
  "volumes":[{"name":"conf","configMap":{"name":"elastic-operator"},"futureVolume":{}}]}}`

// FuzzTemplate checks Template against Diff: for a pod template (any JSON that decodes into
// one, with fields the types do not know) edited in arbitrary ways (edits), both patches
// are refused alike, or both apply to the raw document with identical results, and to the
// typed document giving the edited template.
func FuzzTemplate(f *testing.F) {
	f.Add([]byte(templateSeed), []byte{0, 0, 2, 0, 11, 0, 9, 0, 7, 0})
	f.Add([]byte(templateSeed), []byte{1, 0, 3, 1, 5, 1, 6, 0, 8, 0, 10, 0, 12, 0})
	f.Add([]byte(templateSeed), []byte{14, 0, 2, 3})
	f.Add([]byte(templateSeed), []byte{15, 0, 13, 2})
	f.Add([]byte(templateSeed), []byte{16, 0, 0, 0})
	f.Add([]byte(templateSeed), []byte{17, 0})
	f.Add([]byte(templateSeed), []byte{4, 1, 18, 0, 19, 0})
	f.Add([]byte(`{}`), []byte{0, 0, 2, 0, 9, 0, 7, 0, 11, 0, 13, 0, 18, 0})
	f.Add([]byte(`{"spec":{"containers":[{"name":"m"}]}}`), []byte{5, 0, 5, 0, 5, 9})
	f.Fuzz(func(t *testing.T, raw, edits []byte) {
		var before corev1.PodTemplateSpec
		if json.Unmarshal(raw, &before) != nil {
			return
		}
		after := before.DeepCopy()
		edit(after, edits)
		cheap, errCheap := Template("/spec/template", &before, after)
		full, errFull := Diff(&wrapped{before}, &wrapped{*after})
		if (errCheap == nil) != (errFull == nil) {
			t.Fatalf("Template: %v, Diff: %v", errCheap, errFull)
		}
		if errCheap != nil {
			return
		}
		doc := []byte(`{"spec":{"template":` + string(raw) + `}}`)
		gotCheap, errA := applyJSON(doc, cheap)
		gotFull, errB := applyJSON(doc, full)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("applied to the raw document: Template's patch %v, Diff's %v\ncheap %v\nfull %v", errA, errB, cheap, full)
		}
		if errA == nil && !sameJSON(gotCheap, gotFull) {
			t.Fatalf("different results on the raw document\ncheap %s\nfull  %s\nops cheap %v\nops full %v", gotCheap, gotFull, cheap, full)
		}
		typed, err := json.Marshal(&wrapped{before})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&wrapped{*after})
		got, err := applyJSON(typed, cheap)
		if err != nil {
			t.Fatalf("Template's patch does not apply to the typed document: %v\n%v", err, cheap)
		}
		if !sameJSON(got, want) {
			t.Fatalf("Template's patch does not give the edited template\ngot  %s\nwant %s\n%v", got, want, cheap)
		}
	})
}

// wrapped puts a template where a workload has it.
type wrapped struct {
	Template corev1.PodTemplateSpec `json:"template"`
}

func (w *wrapped) MarshalJSON() ([]byte, error) {
	type plain wrapped
	b, err := json.Marshal((*plain)(w))
	return []byte(`{"spec":` + string(b) + `}`), err
}

func applyJSON(doc []byte, ops []jsonpatch.Operation) ([]byte, error) {
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatchv5.DecodePatch(b)
	if err != nil {
		return nil, err
	}
	return p.Apply(doc)
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// edit changes the template as the pairs of bytes of edits say: what package mutate does and
// what it never does (so that the fallbacks run too).
func edit(tmpl *corev1.PodTemplateSpec, edits []byte) {
	spec := &tmpl.Spec
	for len(edits) >= 2 {
		what, n := edits[0]%20, int(edits[1])
		edits = edits[2:]
		if len(spec.Containers) == 0 {
			spec.Containers = append(spec.Containers, corev1.Container{Name: "manager"})
		}
		c := &spec.Containers[n%len(spec.Containers)]
		key := []string{"metrics-guard.eck.dev/metrics-hash", "a/b~c", "app", "x"}[n%4]
		switch what {
		case 0:
			c.Ports = append(c.Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 8081, Protocol: corev1.ProtocolTCP})
		case 1:
			if len(c.Ports) > 0 {
				p := &c.Ports[n%len(c.Ports)]
				p.ContainerPort, p.Protocol = int32(8000+n), corev1.ProtocolTCP
			}
		case 2:
			c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("METRICS_%d", n), Value: "true"})
		case 3:
			if len(c.Env) > 0 {
				c.Env[n%len(c.Env)].Value = fmt.Sprint(n)
			}
		case 4:
			if len(c.Env) > 0 {
				e := &c.Env[n%len(c.Env)]
				if e.ValueFrom != nil {
					e.ValueFrom = nil
				} else {
					e.ValueFrom = &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}
				}
			}
		case 5:
			at := 0
			if len(c.Args) > 0 {
				at = n % (len(c.Args) + 1)
			}
			c.Args = append(c.Args[:at], append([]string{fmt.Sprintf("--metrics-port=%d", n)}, c.Args[at:]...)...)
		case 6:
			if len(c.Args) > 0 {
				c.Args[n%len(c.Args)] = "--metrics-secure=true"
			}
		case 7:
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "tls-certificate", MountPath: "/tmp/certs", ReadOnly: true})
		case 8:
			if len(c.VolumeMounts) > 0 {
				m := &c.VolumeMounts[n%len(c.VolumeMounts)]
				m.MountPath, m.ReadOnly = "/tmp/moved", !m.ReadOnly
			}
		case 9:
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "tls-certificate", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "metrics-tls"}}})
		case 10:
			if len(spec.Volumes) > 0 {
				v := &spec.Volumes[n%len(spec.Volumes)]
				if v.Secret == nil {
					v.Secret = &corev1.SecretVolumeSource{SecretName: "s"}
				} else {
					v.Secret.SecretName, v.Secret.Optional = "t", ptr.To(false)
				}
			}
		case 11:
			if tmpl.Annotations == nil {
				tmpl.Annotations = map[string]string{}
			}
			tmpl.Annotations[key] = fmt.Sprint(n)
		case 12:
			for k := range tmpl.Annotations {
				tmpl.Annotations[k] += "x"
			}
		case 13:
			if tmpl.Labels == nil {
				tmpl.Labels = map[string]string{}
			}
			tmpl.Labels[key] = "v"
		case 14:
			c.Image = fmt.Sprintf("eck-operator:%d", n)
		case 15:
			spec.NodeSelector = map[string]string{"zone": fmt.Sprint(n)}
		case 16:
			spec.Containers = append(spec.Containers, corev1.Container{Name: fmt.Sprintf("side-%d", n)})
		case 17:
			if len(c.Env) > 0 {
				c.Env = c.Env[:len(c.Env)-1]
			}
		case 18:
			c.Command = append(c.Command, "/elastic-operator")
		case 19:
			tmpl.Name = fmt.Sprint(n)
		}
	}
}

func TestConfigMapMatchesDiff(t *testing.T) {
	before := &corev1.ConfigMap{Data: map[string]string{"eck.yaml": "metrics-port: 0\n", "other": "x"}, BinaryData: map[string][]byte{"b": []byte("1")}}
	before.Labels = map[string]string{"a": "1"}
	for name, change := range map[string]func(*corev1.ConfigMap){
		"data":        func(cm *corev1.ConfigMap) { cm.Data["eck.yaml"] = "metrics-port: 8081\n" },
		"binary":      func(cm *corev1.ConfigMap) { cm.BinaryData["b"] = []byte("2"); cm.BinaryData["c"] = nil },
		"label":       func(cm *corev1.ConfigMap) { cm.Labels["metrics-guard.eck.dev/config-of"] = "elastic-operator" },
		"annotations": func(cm *corev1.ConfigMap) { cm.Annotations = map[string]string{"x/y": "z"} },
		"name":        func(cm *corev1.ConfigMap) { cm.Name = "renamed" },
		"nothing":     func(*corev1.ConfigMap) {},
		"removal":     func(cm *corev1.ConfigMap) { delete(cm.Data, "other") },
	} {
		after := before.DeepCopy()
		change(after)
		cheap, err1 := ConfigMap(before, after)
		full, err2 := Diff(before, after)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%s: ConfigMap %v, Diff %v", name, err1, err2)
		}
		doc, _ := json.Marshal(before)
		a, errA := applyJSON(doc, cheap)
		b, errB := applyJSON(doc, full)
		if errA != nil || errB != nil || !sameJSON(a, b) {
			t.Errorf("%s: %s (%v) != %s (%v)", name, a, errA, b, errB)
		}
	}
}
