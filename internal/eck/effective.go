package eck

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
)

// SourceKind is where ECK takes a setting from; the kinds are in ECK's order of precedence.
type SourceKind string

// Sources, most precedent first.
const (
	FromFlag    SourceKind = "flag"
	FromEnv     SourceKind = "env"
	FromEnvFrom SourceKind = "envFrom"
	FromFile    SourceKind = "file"
	FromDefault SourceKind = "default"
)

// Value is a setting as ECK will read it.
type Value struct {
	Setting Setting
	// Raw is what ECK converts: the text of a flag or variable, the decoded YAML of the file.
	Raw  any
	Kind SourceKind
	// Where names the source: "args[2]", "env[0] METRICS_SECURE", "envFrom ConfigMap
	// insecure-env", "ConfigMap elastic-operator key eck.yaml".
	Where string
	// Unknown says why the value cannot be known; the other fields are then unset.
	Unknown string
	// Env is the index of the winning env entry (Kind FromEnv), for a mutation to set it.
	Env int
}

// Bool is the value as ECK's viper.GetBool reads it.
func (v Value) Bool() bool { return castBool(v.Raw) }

// Int is the value as ECK's viper.GetInt reads it.
func (v Value) Int() int { return castInt(v.Raw) }

// String is the value as ECK's viper.GetString reads it.
func (v Value) String() string { return castString(v.Raw) }

// Text is the value as ECK reads it, for messages.
func (v Value) Text() string {
	switch v.Setting.Type {
	case Bool:
		return fmt.Sprint(v.Bool())
	case Int:
		return fmt.Sprint(v.Int())
	}
	return fmt.Sprintf("%q", v.String())
}

// Source describes where the value comes from, for reasons.
func (v Value) Source() string {
	switch v.Kind {
	case FromFlag:
		return fmt.Sprintf("flag --%s in %s", v.Setting.Name, v.Where)
	case FromEnv:
		return fmt.Sprintf("env %s (%s)", v.Setting.Env(), v.Where)
	case FromEnvFrom:
		return fmt.Sprintf("env %s from %s", v.Setting.Env(), v.Where)
	case FromFile:
		return "eck.yaml (" + v.Where + ")"
	}
	return "ECK's default"
}

// Describe is "metrics-secure false from env METRICS_SECURE (...)", or why it is unknown.
func (v Value) Describe() string {
	if v.Unknown != "" {
		return fmt.Sprintf("%s is unknown: %s", v.Setting.Name, v.Unknown)
	}
	return fmt.Sprintf("%s %s from %s", v.Setting.Name, v.Text(), v.Source())
}

// File is the config file ECK reads (the last --config), as the kubelet materialises it.
type File struct {
	Path string
	// ConfigMap and Key locate it when a ConfigMap volume (or a ConfigMap source of a
	// projected volume) provides it; Binary when the key is in binaryData.
	ConfigMap string
	Key       string
	Binary    bool
	// Text and Config are its content, when known.
	Text   string
	Config *eckconfig.Config
	// Unknown says why its content cannot be known.
	Unknown string
	// SubPath is set when the file is mounted with subPath: the kubelet does not update it
	// when the ConfigMap changes.
	SubPath bool
}

// ConfigMaps returns a ConfigMap of the pod's namespace by name, nil when it does not exist.
type ConfigMaps func(name string) *corev1.ConfigMap

// Effective is what ECK, run in one container, will read.
type Effective struct {
	CommandLine *CommandLine
	// File is nil when no --config is given: ECK then reads no file.
	File   *File
	Values map[string]Value
	// envFrom holds the env sources that may set variables, for mutations to pin them.
	envFrom []envSource
}

// Value returns a setting's effective value.
func (e *Effective) Value(s Setting) Value { return e.Values[s.Name] }

// EnvFromMaySet reports whether an envFrom source (known or not) may set the setting's
// variable, so that a mutation pins it with an explicit env entry, which wins.
func (e *Effective) EnvFromMaySet(s Setting) bool {
	for _, src := range e.envFrom {
		if strings.HasPrefix(s.Env(), src.prefix) {
			return true
		}
	}
	return false
}

// Resolve computes what ECK reads in container i of tmpl: the command line after the
// kubelet's expansion, the environment, the config file and the defaults. configMaps may be
// nil when no ConfigMap can be read (recognition): what depends on one is then unknown.
func Resolve(tmpl *corev1.PodTemplateSpec, i int, configMaps ConfigMaps) *Effective {
	return resolveContainer(&tmpl.Spec, &tmpl.Spec.Containers[i], configMaps)
}

func resolveContainer(spec *corev1.PodSpec, c *corev1.Container, configMaps ConfigMaps) *Effective {
	env := resolveEnv(c, configMaps)
	e := &Effective{Values: map[string]Value{}, envFrom: env.sources}
	e.CommandLine = parseCommandLine(commandWords(c, env))
	if cl := e.CommandLine; cl.Unknown == "" && cl.NotManager == "" {
		if m := mountOver(c, Entrypoint); m != nil {
			cl.Unknown = fmt.Sprintf("volume %s is mounted at %s, over ECK's binary", m.Name, m.MountPath)
		}
	}
	if e.CommandLine.Unknown == "" && e.CommandLine.NotManager == "" {
		if use, ok := e.CommandLine.Last(Config.Name); ok {
			e.File = resolveFile(spec, c, use, configMaps)
		}
	}
	for _, s := range MetricsSettings {
		e.Values[s.Name] = e.resolve(s, env)
	}
	if v := e.Values[MetricsCertDir.Name]; v.Unknown == "" && v.String() == "" {
		// ECK's default, and controller-runtime's for an empty value, is under os.TempDir():
		// $TMPDIR when it is set.
		e.Values[MetricsCertDir.Name] = defaultCertDir(v, env)
	}
	return e
}

// defaultCertDir is the cert dir ECK uses when nothing sets one, from the container's TMPDIR.
func defaultCertDir(v Value, env *environment) Value {
	tmp, ok := env.lookup("TMPDIR")
	switch {
	case tmp.unknown != "":
		v.Unknown = "env TMPDIR, under which ECK's default cert dir lies: " + tmp.unknown
	case ok && tmp.value != "":
		v.Raw, v.Where = path.Join(tmp.value, "k8s-metrics-server", "serving-certs"), "under env TMPDIR ("+tmp.where+")"
	default:
		v.Raw = DefaultMetricsCertDir
	}
	return v
}

// mountOver is the container's mount at p or at one of its parents, if any.
func mountOver(c *corev1.Container, p string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		mp := path.Clean(c.VolumeMounts[i].MountPath)
		if mp == p || mp == "/" || strings.HasPrefix(p, mp+"/") {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// OtherManagers says, for each container of the pod but container i (init containers that
// run beside it included), that runs the ECK image and may run its manager, why: the guard
// secures one container of a pod, and another one would serve metrics of its own.
func OtherManagers(tmpl *corev1.PodTemplateSpec, i int) []string {
	var out []string
	check := func(kind string, j int, c *corev1.Container) {
		if !IsOperatorImage(c.Image) {
			return
		}
		if cl := resolveContainer(&tmpl.Spec, c, nil).CommandLine; cl.NotManager == "" {
			out = append(out, fmt.Sprintf("%s %s also runs the ECK image, and may run its manager with metrics of its own", kind, c.Name))
		}
	}
	for j := range tmpl.Spec.Containers {
		if j != i {
			check("container", j, &tmpl.Spec.Containers[j])
		}
	}
	for j := range tmpl.Spec.InitContainers {
		if c := &tmpl.Spec.InitContainers[j]; c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			check("sidecar init container", j, c)
		}
	}
	return out
}

func (e *Effective) resolve(s Setting, env *environment) Value {
	v := Value{Setting: s, Env: -1}
	cl := e.CommandLine
	if cl.Unknown != "" {
		v.Unknown = cl.Unknown
		return v
	}
	if use, ok := cl.Last(s.Name); ok {
		if use.ValueUnknown != "" {
			v.Unknown = fmt.Sprintf("flag --%s in %s: %s", s.Name, cl.Words[use.ValueWord], use.ValueUnknown)
			return v
		}
		v.Raw, v.Kind, v.Where = use.Value, FromFlag, cl.Words[use.NameWord].String()
		return v
	}
	if ev, ok := env.lookup(s.Env()); ok || ev.unknown != "" {
		if ev.unknown != "" {
			v.Unknown = fmt.Sprintf("env %s: %s", s.Env(), ev.unknown)
			return v
		}
		// viper ignores an empty variable (AllowEmptyEnv is off).
		if ev.value != "" {
			v.Raw, v.Kind, v.Where, v.Env = ev.value, ev.kind, ev.where, ev.index
			return v
		}
	}
	if f := e.File; f != nil {
		if f.Unknown != "" {
			v.Unknown = fmt.Sprintf("the config file %s: %s", f.Path, f.Unknown)
			return v
		}
		if raw, ok := f.Config.Value(s.Name); ok {
			v.Raw, v.Kind, v.Where = raw, FromFile, f.describe()
			return v
		}
	}
	v.Raw, v.Kind = s.Default, FromDefault
	return v
}

func (f *File) describe() string {
	where := "data"
	if f.Binary {
		where = "binaryData"
	}
	return fmt.Sprintf("ConfigMap %s %s[%s]", f.ConfigMap, where, f.Key)
}

// commandWords is the container's command line: its command, or the image's entrypoint,
// then its args, each expanded as the kubelet does with the container's environment.
func commandWords(c *corev1.Container, env *environment) []Word {
	var words []Word
	if len(c.Command) == 0 {
		words = append(words, Word{Field: "command", Index: -1, Text: Entrypoint})
	}
	add := func(field string, list []string) {
		for i, s := range list {
			text, unknown := expand(s, env.expandLookup)
			words = append(words, Word{Field: field, Index: i, Text: text, Raw: s, Unknown: unknown})
		}
	}
	add("command", c.Command)
	add("args", c.Args)
	return words
}

// envSource is an envFrom entry.
type envSource struct {
	prefix string
	where  string
	// data is the ConfigMap's data; nil with unknown set when it cannot be read.
	data    map[string]string
	unknown string
}

type envVar struct {
	value   string
	kind    SourceKind
	where   string
	index   int // in env; -1 for envFrom
	unknown string
}

// environment is a container's variables as the kubelet sets them: envFrom sources in
// order, then env entries in order, later ones winning.
type environment struct {
	sources []envSource
	vars    map[string]envVar // env entries, after the sources
}

func resolveEnv(c *corev1.Container, configMaps ConfigMaps) *environment {
	env := &environment{vars: map[string]envVar{}}
	for _, from := range c.EnvFrom {
		src := envSource{prefix: from.Prefix}
		switch {
		case from.ConfigMapRef != nil:
			name := from.ConfigMapRef.Name
			src.where = "envFrom ConfigMap " + name
			switch cm := get(configMaps, name); {
			case configMaps == nil:
				src.unknown = src.where + " is not read here"
			case cm != nil:
				src.data = cm.Data
			case from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional:
				continue // sets nothing
			default:
				src.unknown = fmt.Sprintf("ConfigMap %s does not exist: the pod cannot start until it does", name)
			}
		case from.SecretRef != nil:
			src.where = "envFrom Secret " + from.SecretRef.Name
			src.unknown = fmt.Sprintf("the guard does not read Secrets (envFrom Secret %s)", from.SecretRef.Name)
		default:
			continue
		}
		env.sources = append(env.sources, src)
	}
	for i, e := range c.Env {
		v := envVar{kind: FromEnv, where: fmt.Sprintf("env[%d]", i), index: i}
		if e.ValueFrom == nil {
			v.value, v.unknown = expand(e.Value, env.expandLookup)
			env.vars[e.Name] = v
			continue
		}
		ref := e.ValueFrom.ConfigMapKeyRef
		if ref == nil {
			v.unknown = fmt.Sprintf("env[%d] takes its value from a Secret, a field or a resource, which the guard does not read", i)
			env.vars[e.Name] = v
			continue
		}
		optional := ref.Optional != nil && *ref.Optional
		v.where = fmt.Sprintf("env[%d] from ConfigMap %s key %s", i, ref.Name, ref.Key)
		cm := get(configMaps, ref.Name)
		switch value, ok := "", false; {
		case configMaps == nil:
			v.unknown = fmt.Sprintf("env[%d] takes its value from ConfigMap %s, not read here", i, ref.Name)
		case cm != nil:
			if value, ok = cm.Data[ref.Key]; ok {
				v.value = value
			} else if optional {
				continue
			} else {
				// Absent, or trimmed from the guard's cache: either way not known.
				v.unknown = fmt.Sprintf("env[%d]: ConfigMap %s has no key %s the guard can read", i, ref.Name, ref.Key)
			}
		case optional:
			continue
		default:
			v.unknown = fmt.Sprintf("env[%d]: ConfigMap %s does not exist: the pod cannot start until it does", i, ref.Name)
		}
		env.vars[e.Name] = v
	}
	return env
}

func get(configMaps ConfigMaps, name string) *corev1.ConfigMap {
	if configMaps == nil {
		return nil
	}
	return configMaps(name)
}

// lookup finds a variable: an env entry, else the last envFrom source that sets it. ok is
// false when nothing sets it; unknown is set when a source that may set it cannot be read.
func (env *environment) lookup(name string) (envVar, bool) {
	if v, ok := env.vars[name]; ok {
		return v, v.unknown == ""
	}
	for i := len(env.sources) - 1; i >= 0; i-- {
		src := env.sources[i]
		key, ok := strings.CutPrefix(name, src.prefix)
		if !ok {
			continue
		}
		if src.unknown != "" {
			return envVar{unknown: src.unknown}, false
		}
		if value, ok := src.data[key]; ok {
			return envVar{value: value, kind: FromEnvFrom, where: src.where, index: -1}, true
		}
	}
	return envVar{}, false
}

// expandLookup is lookup as expand wants it. A variable from envFrom may be missing from a
// ConfigMap the guard's cache trimmed, so a command line that refers to one is unknown.
func (env *environment) expandLookup(name string) (string, bool, string) {
	if v, ok := env.vars[name]; ok {
		return v.value, v.unknown == "", v.unknown
	}
	for _, src := range env.sources {
		if strings.HasPrefix(name, src.prefix) {
			return "", false, fmt.Sprintf("may be set by %s", src.where)
		}
	}
	return "", false, ""
}

// resolveFile locates the config file in the container's mounts and reads it.
func resolveFile(spec *corev1.PodSpec, c *corev1.Container, use FlagUse, configMaps ConfigMaps) *File {
	f := &File{Path: use.Value}
	if use.ValueUnknown != "" {
		f.Unknown = use.ValueUnknown
		return f
	}
	p := use.Value
	if !path.IsAbs(p) {
		f.Unknown = "a relative path, which depends on the image's working directory"
		return f
	}
	p = path.Clean(p)
	f.Path = p
	if ext := path.Ext(p); ext != ".yaml" && ext != ".yml" { // viper compares case-sensitively
		f.Unknown = fmt.Sprintf("ECK reads a %q file with another parser than YAML, which the guard does not model", ext)
		return f
	}
	var mount *corev1.VolumeMount
	twice := false
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		mp := path.Clean(m.MountPath)
		if p != mp && !strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/") {
			continue
		}
		switch {
		case mount == nil || len(mp) > len(path.Clean(mount.MountPath)):
			mount, twice = m, false
		case len(mp) == len(path.Clean(mount.MountPath)):
			twice = true // "/conf" and "/conf/": the runtime decides which is on top
		}
	}
	if twice {
		f.Unknown = fmt.Sprintf("two volumes are mounted at %s", path.Clean(mount.MountPath))
		return f
	}
	if mount == nil {
		f.Unknown = "no volume is mounted there, so it would come from the image"
		return f
	}
	if mount.SubPathExpr != "" {
		f.Unknown = fmt.Sprintf("volume %s is mounted with subPathExpr", mount.Name)
		return f
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(p, path.Clean(mount.MountPath)), "/")
	rel = path.Clean(path.Join(mount.SubPath, rel))
	f.SubPath = mount.SubPath != ""
	if rel == "." {
		f.Unknown = fmt.Sprintf("volume %s is mounted there as a directory", mount.Name)
		return f
	}
	var vol *corev1.Volume
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == mount.Name {
			vol = &spec.Volumes[i]
		}
	}
	switch {
	case vol == nil:
		f.Unknown = fmt.Sprintf("the pod has no volume %s", mount.Name)
	case vol.ConfigMap != nil:
		f.locate(vol.ConfigMap.Name, vol.ConfigMap.Items, rel)
	case vol.Projected != nil:
		f.locateProjected(vol, rel)
	case vol.Secret != nil:
		f.Unknown = fmt.Sprintf("volume %s is Secret %s, which the guard does not read", vol.Name, vol.Secret.SecretName)
	default:
		f.Unknown = fmt.Sprintf("volume %s is not a ConfigMap, so its content is not known", vol.Name)
	}
	if f.Unknown == "" {
		f.read(configMaps)
	}
	return f
}

// locate finds the key of a ConfigMap volume (or projection) that provides rel.
func (f *File) locate(name string, items []corev1.KeyToPath, rel string) bool {
	f.ConfigMap = name
	if items == nil {
		if strings.Contains(rel, "/") {
			f.Unknown = fmt.Sprintf("ConfigMap %s provides no file %s", name, rel)
			return false
		}
		f.Key = rel
		return true
	}
	for _, it := range items {
		if path.Clean(it.Path) == rel {
			f.Key = it.Key
			return true
		}
	}
	f.Unknown = fmt.Sprintf("no item of the ConfigMap %s volume has path %s, so the file does not exist", name, rel)
	return false
}

func (f *File) locateProjected(vol *corev1.Volume, rel string) {
	found := false
	for _, src := range vol.Projected.Sources {
		switch {
		case src.ConfigMap != nil:
			if !provides(src.ConfigMap.Items, rel) {
				continue
			}
			if found {
				f.Unknown = fmt.Sprintf("several sources of projected volume %s provide %s", vol.Name, rel)
				return
			}
			found = f.locate(src.ConfigMap.Name, src.ConfigMap.Items, rel)
		case src.Secret != nil && provides(src.Secret.Items, rel):
			f.Unknown = fmt.Sprintf("Secret %s of projected volume %s may provide it, and the guard does not read Secrets", src.Secret.Name, vol.Name)
			return
		case src.DownwardAPI != nil || src.ServiceAccountToken != nil || src.ClusterTrustBundle != nil:
			f.Unknown = fmt.Sprintf("projected volume %s has sources other than ConfigMaps and Secrets", vol.Name)
			return
		}
	}
	if !found && f.Unknown == "" {
		f.Unknown = fmt.Sprintf("no source of projected volume %s provides %s", vol.Name, rel)
	}
}

// provides reports whether a projection with items may provide rel (without items, every
// key is a file: it may).
func provides(items []corev1.KeyToPath, rel string) bool {
	if items == nil {
		return !strings.Contains(rel, "/")
	}
	for _, it := range items {
		if path.Clean(it.Path) == rel {
			return true
		}
	}
	return false
}

// read fetches the located ConfigMap key and parses it as ECK does.
func (f *File) read(configMaps ConfigMaps) {
	if configMaps == nil {
		f.Unknown = fmt.Sprintf("ConfigMap %s is not read here", f.ConfigMap)
		return
	}
	cm := configMaps(f.ConfigMap)
	if cm == nil {
		f.Unknown = fmt.Sprintf("ConfigMap %s does not exist", f.ConfigMap)
		return
	}
	if text, ok := cm.Data[f.Key]; ok {
		f.Text = text
	} else if b, ok := cm.BinaryData[f.Key]; ok {
		f.Text, f.Binary = string(b), true
	} else if Trimmed(cm) {
		f.Unknown = fmt.Sprintf("the guard's cache does not keep key %s of ConfigMap %s", f.Key, f.ConfigMap)
		return
	} else {
		f.Unknown = fmt.Sprintf("ConfigMap %s has no key %s", f.ConfigMap, f.Key)
		return
	}
	cfg, err := eckconfig.Parse(f.Text)
	if err != nil {
		f.Unknown = fmt.Sprintf("ECK cannot load it and exits: %v", err)
		return
	}
	f.Config = cfg
}

// ConfigMapRefs are the ConfigMaps container i reads its environment from (envFrom and
// configMapKeyRef), besides the config file's: what Resolve needs to be given.
func ConfigMapRefs(tmpl *corev1.PodTemplateSpec, i int) []string {
	c := &tmpl.Spec.Containers[i]
	var names []string
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			names = append(names, from.ConfigMapRef.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			names = append(names, e.ValueFrom.ConfigMapKeyRef.Name)
		}
	}
	return names
}

// EnvData keeps, of a ConfigMap's data, the keys that an envFrom source (with any prefix)
// can turn into a variable of a metrics setting: the suffixes of METRICS_SECURE and the
// others. A cache that keeps only these still lets Resolve read every envFrom exactly.
func EnvData(data map[string]string) map[string]string {
	var kept map[string]string
	for k, v := range data {
		for _, s := range MetricsSettings {
			if k != "" && strings.HasSuffix(s.Env(), k) {
				if kept == nil {
					kept = map[string]string{}
				}
				kept[k] = v
				break
			}
		}
	}
	return kept
}

// TrimmedAnnotation marks, in the guard's cache only, a ConfigMap whose data the cache did not
// keep in full (cluster.Transform): a key missing there may exist. It is never written to the
// API server.
const TrimmedAnnotation = "metrics-guard.eck.dev/cache-trimmed"

// Trimmed reports whether cm is a cache copy without all of its data.
func Trimmed(cm *corev1.ConfigMap) bool {
	_, ok := cm.Annotations[TrimmedAnnotation]
	return ok
}
